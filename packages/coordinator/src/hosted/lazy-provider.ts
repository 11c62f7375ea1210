import { coerceError, ErrorCode, RbtkError } from '@rbtk/protocol';
import type { HostedProviderImpl, MemberHandle, MemberLaunch, OwnedMember } from './provider.js';

export interface LazyProviderOptions {
  name: string;
  /** Makes the provider once its infrastructure answers (a ping); throws while it does not. */
  connect: () => Promise<HostedProviderImpl>;
  /** What a call says while it cannot reach the infrastructure: "no Docker Engine answers". */
  down: string;
  /** Told once, when connect() first succeeds. */
  onUp?: () => void;
  /** True while nothing of this provider's can exist here (docker: this data directory never made a member folder). */
  dormant?: () => boolean;
}

/** A failed connect to a socket or port: the engine is not there (ENOENT, ECONNREFUSED), not a refusal of the call. */
function unreachable(err: unknown): boolean {
  return (err as { syscall?: string }).syscall === 'connect';
}

/**
 * A provider whose infrastructure may answer only later: dockerd can come up
 * after the coordinator (boot order, a restart of docker.service), so every
 * call tries to connect until one succeeds, instead of the provider being off
 * for the coordinator's lifetime. Until then, and whenever the engine cannot
 * be reached afterwards, calls fail with Unavailable, which the reconcile
 * loop takes as "not now" for that provider's members.
 */
export class LazyProvider implements HostedProviderImpl {
  readonly name: string;
  private made: HostedProviderImpl | undefined;
  private connecting: Promise<HostedProviderImpl> | undefined;

  constructor(private readonly options: LazyProviderOptions) {
    this.name = options.name;
  }

  private offError(err: unknown): RbtkError {
    const e = coerceError(err);
    return new RbtkError(ErrorCode.Unavailable, `the ${this.name} provider is off: ${this.options.down}: ${e.message}`);
  }

  /** The provider, connecting first if it has not yet (one attempt at a time). */
  ready(): Promise<HostedProviderImpl> {
    if (this.made) return Promise.resolve(this.made);
    this.connecting ??= this.options
      .connect()
      .then((p) => {
        this.made = p;
        this.options.onUp?.();
        return p;
      })
      .catch((err: unknown) => {
        throw this.offError(err);
      })
      .finally(() => {
        this.connecting = undefined;
      });
    return this.connecting;
  }

  private async call<T>(fn: (p: HostedProviderImpl) => Promise<T>): Promise<T> {
    const p = await this.ready();
    try {
      return await fn(p);
    } catch (err) {
      throw unreachable(err) ? this.offError(err) : err;
    }
  }

  create(launch: MemberLaunch): Promise<MemberHandle> {
    return this.call((p) => p.create(launch));
  }

  start(memberId: string, handle: MemberHandle): Promise<MemberHandle> {
    return this.call((p) => p.start(memberId, handle));
  }

  stop(memberId: string, handle: MemberHandle): Promise<void> {
    return this.call((p) => p.stop(memberId, handle));
  }

  terminate(memberId: string, handle: MemberHandle | null): Promise<void> {
    return this.call((p) => p.terminate(memberId, handle));
  }

  listOwned(): Promise<OwnedMember[]> {
    return this.call((p) => p.listOwned());
  }

  dormant(): boolean {
    return !this.made && (this.options.dormant?.() ?? false);
  }
}
