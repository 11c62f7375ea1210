import type { Gpu } from '@rbtk/protocol';
import { describe, expect, it } from 'vitest';
import { type IndexedRunner, RunnerIndex, stoppingKey } from '../src/jobs/runner-index.js';
import { SHELL_SPEC } from './store-helpers.js';

const GPU: Gpu = { index: 0, uuid: 'GPU-0', name: 'Tesla T4', memoryMiB: 15360, mig: { mode: 'disabled', devices: [] } };
const GPU_JOB = { id: 'j', spec: { ...SHELL_SPEC, requires: { ...SHELL_SPEC.requires, gpus: 1 } } };

/** r1's entry as a hello builds it: one slot, one GPU, holding what `inFlight` says. */
const entry = (inFlight: IndexedRunner['inFlight'] = new Map()): IndexedRunner => ({
  id: 'r1', poolId: 1, status: 'ONLINE', executors: new Set(['shell']), labels: {}, airgapped: false, maxJobs: 1, gpus: [GPU],
  inFlight, stopping: new Map(), restingUntil: 0, refusals: 0, lastAssignedAt: 0, owner: {}, send: () => {},
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
    expect(index.reserve(fresh, { ...GPU_JOB, attempt: 1 }, 1)).toBe(true); // read queued after attempt 1
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
  expect(index.reserve(old, { ...GPU_JOB, attempt: 0 }, 1)).toBe(true);
  const fresh = entry();
  index.add(fresh);
  expect(index.reserve(fresh, { ...GPU_JOB, attempt: 0 }, 1)).toBe(true);
  index.unreserve(old, 'j'); // the older pick's commit found the job assigned by the newer one
  expect(index.gpusOf(fresh, 'j')).toEqual(['GPU-0']);
});
