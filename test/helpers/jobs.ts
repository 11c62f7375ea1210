import { type Job, type JobSpecInput, type LogChunk } from '@rbtk/protocol';
import type { Fleet } from './fleet.js';
import { waitFor } from './processes.js';

/** Thin REST helpers for tests that poll job state without spawning a CLI each time. */
export class Jobs {
  constructor(private readonly fleet: Fleet) {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${this.fleet.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.fleet.adminToken}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  submit(spec: JobSpecInput): Promise<Job> {
    return this.call('POST', '/v1/jobs', spec);
  }

  get(id: string): Promise<Job> {
    return this.call('GET', `/v1/jobs/${id}`);
  }

  cancel(id: string): Promise<Job> {
    return this.call('POST', `/v1/jobs/${id}/cancel`);
  }

  async log(id: string): Promise<string> {
    const chunks = await this.call<LogChunk[]>('GET', `/v1/jobs/${id}/logs?offset=0`);
    return chunks.map((c) => c.data).join('');
  }

  async waitForState(id: string, states: Job['state'][], timeoutMs = 30_000): Promise<Job> {
    // The last state seen goes into the timeout's message: "stuck in assigned" and "never left queued" are different bugs.
    let last: Job | undefined;
    try {
      return await waitFor(`job ${id} in ${states.join('|')}`, async () => {
        last = await this.get(id);
        return states.includes(last.state) ? last : undefined;
      }, timeoutMs, 100);
    } catch (err) {
      if (!last) throw err;
      const { state, runnerId, attempt, reason } = last;
      throw new Error(`${(err as Error).message}; job last seen ${state} (runner ${runnerId ?? 'none'}, attempt ${attempt}, reason ${reason ?? 'none'})`);
    }
  }
}

export const shell = (script: string, extra: Partial<JobSpecInput> = {}): JobSpecInput => ({
  pool: 'build',
  executor: { type: 'shell', command: ['sh', '-c', script] },
  ...extra,
});

