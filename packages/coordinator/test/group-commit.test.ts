import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Db, openDatabase } from '../src/store/sqlite/db.js';
import { GroupCommit } from '../src/store/sqlite/group-commit.js';
import { WalSync } from '../src/store/sqlite/wal-sync.js';
import { requireStrace } from '../../../test/helpers/strace.js';
import { tempDir } from './helpers.js';

const hasStrace = requireStrace('the traced group commit test');

let dir: { dir: string; cleanup: () => void };
let db: Db;

beforeEach(() => {
  dir = tempDir();
  db = openDatabase(path.join(dir.dir, 'g.db'));
  db.exec('CREATE TABLE t (x INTEGER NOT NULL UNIQUE)');
});

afterEach(() => {
  if (db.open) db.close();
  WalSync.closeFor(db);
  dir.cleanup();
});

describe('GroupCommit on a WAL file', () => {
  it('commits the writes of one turn together, rolls back only the one that throws, and leaves synchronous=FULL', async () => {
    const group = new GroupCommit(db);
    const insert = (x: number) => group.run(() => db.prepare('INSERT INTO t (x) VALUES (?)').run(x).changes);
    const outcomes = await Promise.allSettled([insert(1), insert(2), insert(1), insert(3)]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(String((outcomes[2] as PromiseRejectedResult).reason)).toMatch(/UNIQUE/);
    expect(db.prepare('SELECT x FROM t ORDER BY x').pluck().all()).toEqual([1, 2, 3]);
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
  });

  it('runs a write that executes none without a savepoint; its throw fails only its caller', async () => {
    const group = new GroupCommit(db);
    const insert = (x: number) => group.run(() => db.prepare('INSERT INTO t (x) VALUES (?)').run(x).changes);
    const read = (fail: boolean) =>
      group.run(
        () => {
          if (fail) throw new Error('decided against it');
          return db.prepare('SELECT COUNT(*) FROM t').pluck().get();
        },
        { writes: false },
      );
    const before = db.prepare('SELECT total_changes()').pluck().get() as number;
    const outcomes = await Promise.allSettled([insert(1), read(false), read(true), insert(2)]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect((outcomes[1] as PromiseFulfilledResult<number>).value).toBe(1); // sees the write before it
    expect(db.prepare('SELECT x FROM t ORDER BY x').pluck().all()).toEqual([1, 2]);
    expect((db.prepare('SELECT total_changes()').pluck().get() as number) - before).toBe(2);
  });

  it('settles no caller before its commit, and serves the callers waiting when the database closes', async () => {
    const group = new GroupCommit(db);
    let settled = false;
    const write = group.run(() => db.prepare('INSERT INTO t (x) VALUES (7)').run()).then(() => (settled = true));
    expect(settled).toBe(false);
    await write;
    // A write queued, then the connection closed before its turn: the caller hears why.
    const late = group.run(() => 1);
    db.close();
    WalSync.closeFor(db);
    await expect(late).rejects.toThrow(/not open|closed/);
  });
});

const script = `
import { writeSync } from 'node:fs';
const [db, gc] = await Promise.all([import(process.argv[2]), import(process.argv[3])]);
const conn = db.openDatabase(process.argv[4]);
conn.exec('CREATE TABLE t (x)');
const group = new gc.GroupCommit(conn);
writeSync(1, 'begin\\n');
for (let round = 0; round < 5; round++) {
  await Promise.all([1, 2, 3].map((i) => group.run(() => conn.prepare('INSERT INTO t VALUES (?)').run(round * 10 + i))));
  writeSync(1, 'settled\\n');
}
writeSync(1, 'end\\n');
conn.close();
`;

describe.skipIf(!hasStrace)('GroupCommit durability, traced', () => {
  it('settles each group only after an fdatasync of the WAL, and never fsyncs on the event loop', () => {
    const dist = path.resolve(fileURLToPath(import.meta.url), '../../dist/store/sqlite');
    const file = path.join(dir.dir, 'script.mjs');
    const trace = path.join(dir.dir, 'trace');
    writeFileSync(file, script);
    const run = spawnSync(
      'strace',
      ['-f', '-qq', '-y', '-e', 'trace=fsync,fdatasync,write', '-o', trace, process.execPath, file,
        path.join(dist, 'db.js'), path.join(dist, 'group-commit.js'), path.join(dir.dir, 'traced.db')],
      { encoding: 'utf8', timeout: 30_000 },
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toBe('begin\n' + 'settled\n'.repeat(5) + 'end\n');

    // Lines are "TID syscall(...) = R", or split into "<unfinished ...>" and "<... resumed>" when threads overlap.
    const mainTid = Number(readFileSync(trace, 'utf8').split('\n')[0]!.split(' ')[0]);
    const pending = new Map<number, string>();
    const events: ('sync' | 'marker' | 'main-sync')[] = [];
    let begun = false;
    for (const line of readFileSync(trace, 'utf8').split('\n')) {
      const m = /^(\d+)\s+(.*)$/.exec(line);
      if (!m) continue;
      const tid = Number(m[1]);
      const call = m[2]!;
      if (/^write\(1</.test(call)) {
        if (call.includes('"begin')) begun = true;
        else if (begun && call.includes('"settled')) events.push('marker');
        else if (call.includes('"end')) break;
        continue;
      }
      if (!begun) continue;
      const start = /^(fsync|fdatasync)\(\d+<([^>]*)>/.exec(call);
      if (start && tid === mainTid) events.push('main-sync');
      if (start && call.includes('<unfinished')) pending.set(tid, start[2]!);
      const resumed = /^<\.\.\. (?:fsync|fdatasync) resumed>.*= 0/.test(call) ? pending.get(tid) : undefined;
      const completedPath = start && / = 0$/.test(call) ? start[2]! : resumed;
      if (completedPath?.endsWith('-wal')) events.push('sync');
    }
    expect(events).not.toContain('main-sync');
    // Each "settled" has a completed WAL fdatasync after the one before it.
    expect(events.filter((e) => e === 'marker')).toHaveLength(5);
    let syncedSinceMarker = false;
    for (const e of events) {
      if (e === 'sync') syncedSinceMarker = true;
      else {
        expect(syncedSinceMarker).toBe(true);
        syncedSinceMarker = false;
      }
    }
  });
});
