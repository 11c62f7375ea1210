import { coerceError, ErrorCode, type HostedProvider, RbtkError } from '@rbtk/protocol';
import type { HostedProviderImpl, OwnedMember } from './provider.js';

export type Providers = Partial<Record<HostedProvider, HostedProviderImpl>>;

/** The provider of that name on this coordinator, or Unavailable. */
export function providerNamed(providers: Providers, name: HostedProvider): HostedProviderImpl {
  const p = providers[name];
  if (!p) throw new RbtkError(ErrorCode.Unavailable, `the ${name} provider is not available on this coordinator`);
  return p;
}

/** What each provider runs for this coordinator, listed once for a pass. */
export interface OwnedLists {
  /** Of the providers that answered: member id -> what the provider found. */
  lists: Map<HostedProvider, Map<string, OwnedMember>>;
  /** Providers that could not list (not on this coordinator, or their engine is down), with why. */
  failed: Map<HostedProvider, Error>;
}

/**
 * Lists what the named providers run. A member is judged (and torn down) by
 * the provider that made it, which is not its pool's current one after a
 * `pool update --provider`; one that cannot list now leaves its members
 * unjudged rather than failing the pass for the others.
 */
export async function listOwned(providers: Providers, names: Iterable<HostedProvider>): Promise<OwnedLists> {
  const out: OwnedLists = { lists: new Map(), failed: new Map() };
  await Promise.all(
    [...new Set(names)].map(async (name) => {
      try {
        const owned = await providerNamed(providers, name).listOwned();
        out.lists.set(name, new Map(owned.map((o) => [o.memberId, o])));
      } catch (err) {
        out.failed.set(name, coerceError(err));
      }
    }),
  );
  return out;
}

/** Every provider this coordinator has, by name. */
export function providerNames(providers: Providers): HostedProvider[] {
  return (Object.keys(providers) as HostedProvider[]).filter((name) => providers[name] !== undefined);
}
