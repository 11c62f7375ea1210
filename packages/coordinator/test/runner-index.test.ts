import type { Gpu } from '@rbtk/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type IndexedRunner, RunnerIndex, stoppingKey } from '../src/jobs/runner-index.js';
import { SHELL_SPEC } from './store-helpers.js';

const GPU: Gpu = { index: 0, uuid: 'GPU-0', name: 'Tesla T4', memoryMiB: 15360, mig: { mode: 'disabled', devices: [] } };
const GPU_JOB = { id: 'j', spec: { ...SHELL_SPEC, requires: { ...SHELL_SPEC.requires, gpus: 1 } } };

/** r1's entry as a hello builds it: one slot, one GPU, holding what `inFlight` says. */
const entry = (inFlight: IndexedRunner['inFlight'] = new Map()): IndexedRunner => ({
  id: 'r1', poolId: 1, status: 'ONLINE', executors: new Set(['shell']), labels: {}, airgapped: false, maxJobs: 1, gpus: [GPU],
  inFlight, stopping: new Map(), restingUntil: 0, refusals: 0, owner: {}, send: () => {},
});

// Attempt 1 of j left r1 by a change on r1's old session whose effects run only after its fsync; meanwhile
// r1's new session said hello (its entry built from a read that no longer has j) and a dispatch reserved
// j again there, for attempt 2. The late effects of attempt 1 must leave that reservation alone.
describe('a late release of an attempt that left a runner whose entry was rebuilt', () => {
  const rebuilt = () => {
    const index = new RunnerIndex();
    index.add(entry(new Map([['j', { attempt: 1, gpus: ['GPU-0'] }]])));
    const fresh = entry();
    index.add(fresh); // the new session's hello
    expect(index.reserve(fresh, { ...GPU_JOB, attempt: 1 })).toBe(true); // read queued after attempt 1
    return { index, fresh };
  };

  it('keeps the reservation of the next attempt, which is assigned with its GPU and freed by its own end', () => {
    const { index, fresh } = rebuilt();
    expect(index.release('r1', 'j', 1)).toBe(false);
    index.assigned(fresh, 'j', 2);
    expect(index.gpusOf(fresh, 'j')).toEqual(['GPU-0']);
    expect(index.freeSlots(1)).toBe(0);
    expect(index.release('r1', 'j', 2)).toBe(true);
    expect(index.freeSlots(1)).toBe(1);
  });

  it('does not park the next attempt as the one being stopped', () => {
    const { index, fresh } = rebuilt();
    index.releaseStopping('r1', 'j', 1);
    expect(fresh.stopping.size).toBe(0);
    expect(index.gpusOf(fresh, 'j')).toEqual(['GPU-0']);
    index.releaseStopping('r1', 'j', 2);
    expect([...fresh.stopping]).toEqual([[stoppingKey('j', 2), ['GPU-0']]]);
    expect(fresh.inFlight.size).toBe(0);
  });

  it('frees a reservation whose commit made a later attempt than its read, before assigned() records it', () => {
    // Read queued after attempt 1, but requeued again before its commit: that commit made attempt 4.
    const { index, fresh } = rebuilt();
    expect(index.release('r1', 'j', 4)).toBe(true);
    expect(fresh.inFlight.size).toBe(0);
  });
});

it('a give-back on an older entry leaves the newer entry’s reservation of the job', () => {
  const index = new RunnerIndex();
  const old = entry();
  index.add(old);
  expect(index.reserve(old, { ...GPU_JOB, attempt: 0 })).toBe(true);
  const fresh = entry();
  index.add(fresh);
  expect(index.reserve(fresh, { ...GPU_JOB, attempt: 0 })).toBe(true);
  index.unreserve(old, 'j'); // the older pick's commit found the job assigned by the newer one
  expect(index.gpusOf(fresh, 'j')).toEqual(['GPU-0']);
});

describe('picking from a pool', () => {
  const runner = (id: string, fields: Partial<IndexedRunner> = {}): IndexedRunner => ({ ...entry(), id, gpus: [], ...fields });
  const job = (id: string, labels: Record<string, string> = {}) => ({ id, attempt: 0, excluded: [], spec: { ...SHELL_SPEC, requires: { labels } } });

  it('gives a job to the runner with most free slots, then to the one that has waited longest at that many', () => {
    const index = new RunnerIndex();
    const [a, b, c] = ['a', 'b', 'c'].map((id) => runner(id, { maxJobs: 2 }));
    for (const r of [a!, b!, c!]) index.add(r);
    const order: string[] = [];
    for (let i = 0; i < 6; i++) {
      const r = index.pick(1, job(`j${i}`))!;
      index.reserve(r, job(`j${i}`));
      order.push(r.id);
    }
    // Each runner's second slot goes only once every runner has one job: the load spreads.
    expect(order).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
    expect(index.pick(1, job('j6'))).toBeUndefined();
    index.release('c', 'j2', 1);
    index.release('a', 'j0', 1);
    // c has had a slot free the longest.
    expect(index.pick(1, job('j7'))?.id).toBe('c');
  });

  it('passes over runners that are not ONLINE, retired, resting, or lack the labels, and counts only their slots that may be offered', () => {
    const index = new RunnerIndex();
    const [a, b, c] = [runner('a'), runner('b', { labels: { gpu: 'yes' } }), runner('c', { maxJobs: 3 })];
    for (const r of [a, b, c]) index.add(r);
    expect(index.freeSlots(1)).toBe(5);
    expect(index.pick(1, job('j', { gpu: 'yes' }))?.id).toBe('b');
    index.setStatus(c, 'DRAINING');
    expect(index.freeSlots(1)).toBe(2);
    expect(index.pick(1, job('j'))?.id).toBe('a');
    index.retire(a);
    index.rest('b', () => {});
    expect(index.freeSlots(1)).toBe(0);
    expect(index.pick(1, job('j'))).toBeUndefined();
    index.setStatus(c, 'ONLINE');
    expect(index.freeSlots(1)).toBe(3);
    expect(index.pick(1, job('j'))?.id).toBe('c');
    index.remove('c');
    expect(index.freeSlots(1)).toBe(0);
  });

  it('agrees with a look at every runner, whatever reservations, releases, stops, status changes and rests came before', () => {
    const ops = fc.array(
      fc.oneof(
        { arbitrary: fc.record({ op: fc.constant('reserve' as const), job: fc.nat(9), labels: fc.boolean() }), weight: 3 },
        // Of the attempts held now (in flight, or being stopped for `ended`), the one at `held` (mod their count).
        { arbitrary: fc.record({ op: fc.constantFrom('release' as const, 'stop' as const, 'ended' as const), held: fc.nat(99) }), weight: 3 },
        fc.record({ op: fc.constant('status' as const), runner: fc.nat(5), status: fc.constantFrom('ONLINE', 'DRAINING', 'OFFLINE') }),
        fc.record({ op: fc.constant('rest' as const), runner: fc.nat(5) }),
        fc.record({ op: fc.constant('rejoin' as const), runner: fc.nat(5) }),
      ),
      { minLength: 20, maxLength: 80 },
    );
    let ended = 0; // attempts that left a runner, over all runs: the property must meet many
    fc.assert(
      fc.property(ops, (steps) => {
        const index = new RunnerIndex();
        const make = (i: number) => runner(`r${i}`, { maxJobs: 1 + (i % 3), labels: i % 2 ? { big: 'yes' } : {} });
        for (let i = 0; i < 6; i++) index.add(make(i));
        const all = () => [...Array(6).keys()].map((i) => index.get(`r${i}`)!);
        let changed = 0;
        let attempts = 0;
        for (const s of steps) {
          const r = 'runner' in s ? index.get(`r${s.runner}`)! : undefined;
          if (s.op === 'reserve') {
            // Each attempt of a job is a new one, as the store numbers them.
            const j = { ...job(`j${s.job}`, s.labels ? { big: 'yes' } : {}), attempt: attempts };
            attempts++;
            const picked = index.pick(1, j);
            if (picked) index.reserve(picked, j);
          } else if ('held' in s) {
            const ending = s.op === 'ended';
            const held = all().flatMap((x) =>
              ending
                ? [...x.stopping.keys()].map((k) => [x.id, k.split(':')[0]!, Number(k.split(':')[1])] as const)
                : [...x.inFlight].map(([jobId, { attempt }]) => [x.id, jobId, attempt] as const),
            );
            const [runnerId, jobId, attempt] = held[s.held % Math.max(1, held.length)] ?? [];
            if (runnerId === undefined || jobId === undefined || attempt === undefined) continue;
            changed++;
            if (s.op === 'release') expect(index.release(runnerId, jobId, attempt)).toBe(true);
            else if (s.op === 'stop') index.releaseStopping(runnerId, jobId, attempt);
            else expect(index.ended(runnerId, jobId, attempt)).toBe(true);
          } else if (s.op === 'status') index.setStatus(r!, s.status);
          else if (s.op === 'rest') index.rest(r!.id, () => {});
          else index.add(make(s.runner)); // a hello again: a fresh entry, nothing in flight
          const offerable = all().filter((x) => x.status === 'ONLINE' && x.restingUntil === 0);
          expect(index.freeSlots(1)).toBe(offerable.reduce((n, x) => n + Math.max(0, x.maxJobs - x.inFlight.size - x.stopping.size), 0));
          for (const labels of [{}, { big: 'yes' }] as Record<string, string>[]) {
            const fits = offerable.filter((x) => x.inFlight.size + x.stopping.size < x.maxJobs && Object.keys(labels).every((k) => k in x.labels));
            const picked = index.pick(1, job('probe', labels));
            const most = Math.max(0, ...fits.map((x) => x.maxJobs - x.inFlight.size - x.stopping.size));
            if (fits.length === 0) expect(picked).toBeUndefined();
            else expect(picked && picked.maxJobs - picked.inFlight.size - picked.stopping.size).toBe(most);
          }
        }
        ended += changed;
      }),
      { numRuns: 300 },
    );
    expect(ended).toBeGreaterThan(1_000);

  });
});
