import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { QueuedSeqs } from '../src/store/sqlite/queued-seqs.js';

describe('QueuedSeqs', () => {
  it('reads in seq order after a given seq, a requeued seq back at its place', () => {
    const q = new QueuedSeqs();
    for (const s of [1, 2, 3, 4]) q.add(s);
    q.delete(1);
    q.delete(3);
    expect(q.read(0, 10)).toEqual([2, 4]);
    q.add(3); // requeued before it was dropped
    q.add(1); // requeued after the head moved past it
    expect(q.read(0, 10)).toEqual([1, 2, 3, 4]);
    expect(q.read(2, 2)).toEqual([3, 4]);
    expect(q.read(4, 10)).toEqual([]);
    expect(q.size).toBe(4);
  });

  it('answers as a sorted set would, whatever the adds and deletes (compaction included)', () => {
    const op = fc.oneof(
      fc.record({ add: fc.integer({ min: 1, max: 400 }) }),
      fc.record({ del: fc.integer({ min: 1, max: 400 }) }),
      fc.record({ read: fc.integer({ min: 0, max: 400 }), limit: fc.integer({ min: 1, max: 50 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 600 }), (ops) => {
        const q = new QueuedSeqs();
        const model = new Set<number>();
        for (const o of ops) {
          if ('add' in o) (q.add(o.add), model.add(o.add));
          else if ('del' in o) (q.delete(o.del), model.delete(o.del));
          else {
            const want = [...model].sort((a, b) => a - b).filter((s) => s > o.read).slice(0, o.limit);
            expect(q.read(o.read, o.limit)).toEqual(want);
          }
        }
        expect(q.read(0, 1000)).toEqual([...model].sort((a, b) => a - b));
        expect(q.size).toBe(model.size);
      }),
      { numRuns: 300 },
    );
  });
});
