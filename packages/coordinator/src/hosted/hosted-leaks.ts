import type { Act, HostedCore } from './hosted-core.js';
import { type OwnedLists, providerNamed } from './member-providers.js';

/*
 * Leaked members: what a provider runs for this coordinator that no member
 * row owns (a crash between its create and its row, or one left by a
 * provider a pool moved away from). They are torn down by the provider that
 * runs them.
 */

/** Starts ending each leak in the lists; the caller waits for them. */
export async function endLeaks(core: HostedCore, owned: OwnedLists, act?: Act): Promise<{ memberId: string; done: Promise<void> }[]> {
  const ends: { memberId: string; done: Promise<void> }[] = [];
  // Only members of pools of this store are ours to kill: a leak is a folder whose member row is gone.
  // The rows are read once, when the first candidate needs them (the lists were taken before).
  let stored: Set<string> | undefined;
  for (const [name, list] of owned.lists) {
    for (const o of list.values()) {
      if (core.members.has(o.memberId)) continue;
      stored ??= new Set((await core.ctx.store.hosted.allMembers()).map((m) => m.id));
      if (stored.has(o.memberId)) continue;
      const done = providerNamed(core.deps.providers, name)
        .terminate(o.memberId, o.handle)
        .then(() => {
          if (act) act('remove', o.memberId, 'leaked');
          else core.ctx.log.info({ memberId: o.memberId, provider: name }, 'hosted member removed: leaked');
        });
      ends.push({ memberId: o.memberId, done });
    }
  }
  return ends;
}
