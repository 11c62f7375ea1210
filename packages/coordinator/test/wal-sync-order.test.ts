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
  // Two group commits on one connection, as the job store and the token store are.
  const logs = new GroupCommit(db);
  const jobs = new GroupCommit(db);
  const settled: string[] = [];
  const log = logs.run(() => db.prepare('INSERT INTO t VALUES (1)').run()).then(() => settled.push('log chunk'));
  await turn();
  const end = jobs.run(() => db.prepare('INSERT INTO t VALUES (2)').run()).then(() => settled.push('job ended'));
  await turn();
  expect(held).toHaveLength(2); // both in flight

  held[1]!.release(); // the later one returns first: it covers the earlier commit too
  await end;
  expect(settled).toEqual(['log chunk', 'job ended']);
  await log;

  held[0]!.release(); // the earlier one returning afterwards settles no one twice
  await new Promise((resolve) => setTimeout(resolve, 20));
  expect(settled).toEqual(['log chunk', 'job ended']);
});

it('a third commit waits for a slot and for its own fdatasync', async () => {
  const group = new GroupCommit(db);
  const settled: number[] = [];
  for (const x of [1, 2, 3]) {
    void group.run(() => db.prepare('INSERT INTO t VALUES (?)').run(x)).then(() => settled.push(x));
    await turn();
  }
  expect(held).toHaveLength(2); // two in flight, the third waits
  held[0]!.release();
  await vi.waitFor(() => expect(settled).toEqual([1]));
  expect(held).toHaveLength(3); // its own started once a slot was free
  held[1]!.release();
  await vi.waitFor(() => expect(settled).toEqual([1, 2]));
  held[2]!.release();
  await vi.waitFor(() => expect(settled).toEqual([1, 2, 3]));
});
