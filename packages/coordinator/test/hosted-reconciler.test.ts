import { HostedPoolCreate, type HostedPoolCreateInput, type HostedPoolSpec } from '@rbtk/protocol';
import { describe, expect, it } from 'vitest';
import { CREATE_BATCH, minimumTarget, type PlanMember, planReconcile } from '../src/hosted/reconciler.js';
import { specHash } from '../src/hosted/spec-hash.js';

const spec = (over: Partial<HostedPoolCreateInput> = {}): HostedPoolSpec =>
  HostedPoolCreate.parse({ provider: 'process', target: 2, max: 4, warmingTimeout: '1m', readyTtl: '10m', ...over });

const HASH = 'h1';
let seq = 0;
const member = (over: Partial<PlanMember> = {}): PlanMember => ({
  id: `m${++seq}`,
  state: 'ready',
  specHash: HASH,
  createdAt: 0,
  stateChangedAt: 0,
  busy: false,
  ...over,
});

describe('planReconcile (a fake clock)', () => {
  it('creates up to the target from empty, in batches, within max', () => {
    expect(planReconcile({ spec: spec(), specHash: HASH, members: [], now: 0, queuedJobs: 0, draining: false }).create).toBe(2);
    const big = spec({ target: 20, max: 30 });
    expect(planReconcile({ spec: big, specHash: HASH, members: [], now: 0, queuedJobs: 0, draining: false }).create).toBe(CREATE_BATCH);
    const tight = spec({ target: 2, max: 2 });
    const busy = [member({ state: 'claimed', busy: true }), member({ state: 'claimed', busy: true })];
    expect(planReconcile({ spec: tight, specHash: HASH, members: busy, now: 0, queuedJobs: 0, draining: false }).create).toBe(0);
  });

  it('removes errored members, recycles stuck warming and stale ready ones, never a busy one', () => {
    const now = 11 * 60_000;
    const members = [
      member({ id: 'err', state: 'errored' }),
      member({ id: 'stuck', state: 'warming', createdAt: now - 61_000 }),
      member({ id: 'young', state: 'warming', createdAt: now - 10_000 }),
      member({ id: 'stale', state: 'ready', stateChangedAt: now - 10 * 60_000 }),
      member({ id: 'fresh', state: 'ready', stateChangedAt: now - 60_000 }),
      member({ id: 'busy', state: 'claimed', stateChangedAt: 0, specHash: 'old', busy: true }),
    ];
    const plan = planReconcile({ spec: spec(), specHash: HASH, members, now, queuedJobs: 0, draining: false });
    expect(plan.remove).toEqual([
      { id: 'err', reason: 'errored' },
      { id: 'stuck', reason: 'warming_timeout' },
    ]);
    expect(plan.create).toBe(0); // young + fresh make the target of 2
    // The stale one goes once young is ready: until then it is one of the two ready.
    const ready = members.map((m) => (m.id === 'young' ? { ...m, state: 'ready' as const, stateChangedAt: now } : m));
    const next = planReconcile({ spec: spec(), specHash: HASH, members: ready, now, queuedJobs: 0, draining: false });
    expect(next.remove).toContainEqual({ id: 'stale', reason: 'ready_ttl' });
  });

  it('replaces members of an outdated spec but not the busy one: the replacement first', () => {
    const members = [member({ id: 'a', specHash: 'old' }), member({ id: 'b', specHash: 'old', busy: true, state: 'claimed' })];
    const plan = planReconcile({ spec: spec(), specHash: HASH, members, now: 0, queuedJobs: 0, draining: false });
    expect(plan.remove).toEqual([]);
    expect(plan.create).toBe(2);
    const replaced = [...members, member({ id: 'n1' }), member({ id: 'n2', state: 'warming' })];
    expect(planReconcile({ spec: spec(), specHash: HASH, members: replaced, now: 0, queuedJobs: 0, draining: false }).remove).toEqual([]);
    replaced[3]!.state = 'ready';
    const done = planReconcile({ spec: spec(), specHash: HASH, members: replaced, now: 0, queuedJobs: 0, draining: false });
    expect(done).toMatchObject({ remove: [{ id: 'a', reason: 'outdated' }], create: 0 });
  });

  it('rolls a whole pool in stages: the ready count never drops below the target, live members never above max', () => {
    // Expired together (one stateChangedAt) and outdated: target 2, max 3.
    const now = 20 * 60_000;
    let members = [member({ id: 'o1', specHash: 'old' }), member({ id: 'o2' })];
    let removing: string[] = [];
    for (let pass = 0; pass < 10; pass++) {
      const plan = planReconcile({ spec: spec({ max: 3 }), specHash: HASH, members, now, queuedJobs: 0, draining: false });
      expect(members.length).toBeLessThanOrEqual(3);
      removing = plan.remove.map((r) => r.id);
      expect(members.filter((m) => m.state === 'ready' && !removing.includes(m.id)).length).toBeGreaterThanOrEqual(2);
      // The pass's work: removals done, creates warm, then say hello.
      members = members.filter((m) => !removing.includes(m.id)).map((m) => (m.state === 'warming' ? { ...m, state: 'ready', stateChangedAt: now } : m));
      for (let i = 0; i < plan.create; i++) members.push(member({ state: 'warming', createdAt: now, stateChangedAt: now }));
      expect(members.length).toBeLessThanOrEqual(3);
    }
    expect(members.map((m) => m.id).filter((id) => id.startsWith('o'))).toEqual([]);
    expect(members.filter((m) => m.state === 'ready')).toHaveLength(2);
  });

  it('at max there is no room to surge: one at a time', () => {
    const members = [member({ id: 'o1', specHash: 'old', stateChangedAt: 1 }), member({ id: 'o2', specHash: 'old', stateChangedAt: 2 })];
    const tight = spec({ max: 2 });
    const first = planReconcile({ spec: tight, specHash: HASH, members, now: 10, queuedJobs: 0, draining: false });
    expect(first).toMatchObject({ remove: [{ id: 'o1', reason: 'outdated' }], create: 0 });
    const warming = [members[1]!, member({ id: 'n1', state: 'warming' })];
    expect(planReconcile({ spec: tight, specHash: HASH, members: warming, now: 10, queuedJobs: 0, draining: false })).toMatchObject({ remove: [], create: 0 });
  });

  it('removes the excess oldest idle first, warming ones last', () => {
    const members = [
      member({ id: 'w', state: 'warming', createdAt: 1 }),
      member({ id: 'new', createdAt: 30 }),
      member({ id: 'old', createdAt: 10 }),
      member({ id: 'mid', createdAt: 20 }),
    ];
    const plan = planReconcile({ spec: spec({ target: 1 }), specHash: HASH, members, now: 100, queuedJobs: 0, draining: false });
    expect(plan.remove.map((r) => r.id)).toEqual(['old', 'mid', 'new']);
  });

  it('overflow adds one member per queued job beyond the idle ones, up to max; wait does not', () => {
    const members = [member({ state: 'claimed', busy: true })];
    const over = planReconcile({ spec: spec({ target: 1, max: 3, onEmpty: 'overflow' }), specHash: HASH, members, now: 0, queuedJobs: 5, draining: false });
    expect(over).toMatchObject({ create: 2, createReason: 'overflow' });
    const wait = planReconcile({ spec: spec({ target: 1, max: 3 }), specHash: HASH, members, now: 0, queuedJobs: 5, draining: false });
    expect(wait).toMatchObject({ create: 1, createReason: 'target' });
  });

  it('backing off: creates at most the limit, and kept errored members are neither removed nor counted', () => {
    const big = spec({ target: 10, max: 20 });
    const failed = Array.from({ length: 8 }, (_, i) => member({ id: `e${i}`, state: 'errored' }));
    const input = { spec: big, specHash: HASH, members: failed, now: 0, queuedJobs: 0, draining: false };
    // Waiting: nothing made, the failed ones stay in sight.
    expect(planReconcile({ ...input, createLimit: 0, keepErrored: true })).toMatchObject({ remove: [], create: 0 });
    // The next try: the failed ones go, one member is tried.
    const retry = planReconcile({ ...input, createLimit: 1 });
    expect(retry.remove.map((r) => r.reason)).toEqual(Array(8).fill('errored'));
    expect(retry.create).toBe(1);
    // Not backing off: a batch.
    expect(planReconcile(input).create).toBe(CREATE_BATCH);
  });

  it('a draining pool removes its idle members and creates nothing', () => {
    const members = [member({ id: 'r' }), member({ id: 'c', state: 'claimed', busy: true })];
    const plan = planReconcile({ spec: spec(), specHash: HASH, members, now: 0, queuedJobs: 3, draining: true });
    expect(plan).toEqual({ remove: [{ id: 'r', reason: 'drain' }], create: 0, createReason: 'target', stop: [], start: [] });
  });
});

describe('minimumTarget', () => {
  it('is ceil(C × (W + R) / 60 s)', () => {
    expect(minimumTarget(10, 90_000, 30_000)).toBe(20);
    expect(minimumTarget(1, 1_000, 30_000)).toBe(1);
    expect(minimumTarget(0, 90_000, 30_000)).toBe(0);
    expect(minimumTarget(7, 45_000, 30_000)).toBe(9); // 8.75 → 9
  });
});

describe('hosted spec', () => {
  it('defaults, and refuses min above target or target above max', () => {
    expect(spec({ max: undefined })).toMatchObject({ max: 4, mode: 'hot', onEmpty: 'wait', return: 'terminate', executors: ['shell'] });
    expect(() => HostedPoolCreate.parse({ provider: 'process', target: 1, min: 2 })).toThrow(/min \(2\) is above target \(1\)/);
    expect(() => HostedPoolCreate.parse({ provider: 'process', target: 3, max: 2 })).toThrow(/target \(3\) is above max \(2\)/);
  });
});

describe('specHash', () => {
  const hash = (over: Partial<HostedPoolCreateInput> = {}) => specHash(spec(over), 'agent-1');

  it('changes with what members are made from: image, executors, labels, the agent', () => {
    const base = hash({ labels: { tier: 'fast' } });
    expect(hash({ labels: { tier: 'slow' } })).not.toBe(base);
    expect(hash({ labels: {} })).not.toBe(base);
    expect(hash({ labels: { tier: 'fast' }, image: 'runner:2' })).not.toBe(base);
    expect(hash({ labels: { tier: 'fast' }, executors: ['shell', 'docker'] })).not.toBe(base);
    expect(specHash(spec({ labels: { tier: 'fast' } }), 'agent-2')).not.toBe(base);
  });

  it('changes with the coordinator URL members are given', () => {
    const s = spec();
    expect(specHash(s, 'agent-1', 'http://127.0.0.1:7000')).toBe(specHash(s, 'agent-1', 'http://127.0.0.1:7000'));
    expect(specHash(s, 'agent-1', 'http://127.0.0.1:7001')).not.toBe(specHash(s, 'agent-1', 'http://127.0.0.1:7000'));
  });

  it('not with sizing, timing or mode, nor with the order labels or executors were given in', () => {
    const base = hash({ labels: { a: '1', b: '2' }, executors: ['shell', 'docker'] });
    expect(hash({ labels: { b: '2', a: '1' }, executors: ['docker', 'shell'] })).toBe(base);
    expect(hash({ labels: { a: '1', b: '2' }, executors: ['shell', 'docker'], target: 3, max: 9, readyTtl: '1h', mode: 'stopped', autoscale: true })).toBe(base);
  });
});
