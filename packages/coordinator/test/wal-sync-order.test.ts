import path from 'node:path';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { type Db, openDatabase } from '../src/store/sqlite/db.js';
import { GroupCommit } from '../src/store/sqlite/group-commit.js';
import { WalSync } from '../src/store/sqlite/wal-sync.js';
import { tempDir } from './helpers.js';

// The disk decides in which order two fdatasyncs in flight return; here the
// test does, holding each one until it lets it go (the real call still runs).
const held = vi.hoisted(() => [] as { release: () => void }[]);
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  return {
    ...fs,
    fdatasync: (fd: number, done: (err: NodeJS.ErrnoException | null) => void) => {
      held.push({ release: () => fs.fdatasync(fd, done) });
    },
  };
});

let dir: { dir: string; cleanup: () => void };
let db: Db;

beforeEach(() => {
  held.length = 0;
  dir = tempDir();
  db = openDatabase(path.join(dir.dir, 'o.db'));
  db.exec('CREATE TABLE t (x INTEGER NOT NULL)');
});

afterEach(() => {
  db.close();
  WalSync.closeFor(db);
  dir.cleanup();
});

const turn = () => new Promise((resolve) => setImmediate(resolve));

it('settles callers in commit order when a later fdatasync returns first', async () => {
  // Two group commits on one connection, as the job store and the runners' heartbeat store are. The
  // heartbeats' (collectMs) commits while the jobs' fdatasync runs, so two are in flight.
  const jobs = new GroupCommit(db);
  const heartbeats = new GroupCommit(db, { fsync: true, collectMs: 1 });
  const settled: string[] = [];
  const end = jobs.run(() => db.prepare('INSERT INTO t VALUES (1)').run()).then(() => settled.push('job ended'));
  await turn();
  const beat = heartbeats.run(() => db.prepare('INSERT INTO t VALUES (2)').run()).then(() => settled.push('heartbeat'));
  await vi.waitFor(() => expect(held).toHaveLength(2)); // both in flight

  held[1]!.release(); // the later one returns first: it covers the earlier commit too
  await beat;
  expect(settled).toEqual(['job ended', 'heartbeat']);
  await end;

  held[0]!.release(); // the earlier one returning afterwards settles no one twice
  await new Promise((resolve) => setTimeout(resolve, 20));
  expect(settled).toEqual(['job ended', 'heartbeat']);
});

it('writes queued while an fdatasync runs commit together as soon as it ends', async () => {
  let commits = 0;
  const group = new GroupCommit(db, { fsync: true, settled: () => commits++ });
  const settled: number[] = [];
  for (const x of [1, 2, 3]) {
    void group.run(() => db.prepare('INSERT INTO t VALUES (?)').run(x)).then(() => settled.push(x));
    await turn();
  }
  // 2 and 3 came in later turns, while the first commit's fdatasync ran: not committed yet.
  expect(held).toHaveLength(1);
  expect(commits).toBe(1);
  expect(db.prepare('SELECT x FROM t ORDER BY x').pluck().all()).toEqual([1]);

  held[0]!.release();
  await vi.waitFor(() => expect(settled).toEqual([1]));
  expect(commits).toBe(2); // both in one transaction, right after the first fdatasync
  expect(db.prepare('SELECT x FROM t ORDER BY x').pluck().all()).toEqual([1, 2, 3]);
  expect(held).toHaveLength(2);
  held[1]!.release();
  await vi.waitFor(() => expect(settled).toEqual([1, 2, 3]));
});
