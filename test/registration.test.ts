import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '@rbtk/protocol';
import { Fleet } from './helpers/fleet.js';

describe('registration tokens, air-gapped pools and projects', () => {
  let fleet: Fleet;

  beforeAll(async () => {
    fleet = await Fleet.create();
    await fleet.startCoordinator({});
    for (const args of [['pool', 'create', 'reg'], ['pool', 'create', 'vault', '--airgapped']]) {
      const res = await fleet.rbtk(args);
      expect(res.code, res.stderr).toBe(0);
    }
  });

  afterAll(async () => {
    expect(await fleet.close()).toEqual([]);
  });

  it('keeps its state in DIR/rbtk.db (SQLite, WAL)', async () => {
    const db = await readFile(join(fleet.dataDir, 'rbtk.db'));
    expect(db.subarray(0, 15).toString()).toBe('SQLite format 3');
    expect(db[18]).toBe(2); // file format version 2 = WAL
  });

  it('keeps the admin token in a 0600 file and logs only its path', async () => {
    const path = join(fleet.dataDir, 'admin.token');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const log = fleet.coordinator.output.join('\n');
    expect(log).toContain(path);
    expect(log).not.toContain(fleet.adminToken);
    expect((await readFile(path, 'utf8')).trim()).toBe(fleet.adminToken);
  });

  it('says why a registration token is refused: unknown, expired, used up', async () => {
    const unknown = await fleet.register('h1', 'rbtk_reg_abcdefgh12345678_' + 'z'.repeat(43));
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown/i);

    const shortLived = await fleet.mintToken('reg', '--ttl', '300ms');
    await new Promise((r) => setTimeout(r, 600));
    const expired = await fleet.register('h2', shortLived);
    expect(expired.code).toBe(1);
    expect(expired.stderr).toMatch(/expired/i);

    const once = await fleet.mintToken('reg', '--uses', '1');
    expect((await fleet.register('h3', once)).code).toBe(0);
    const second = await fleet.register('h4', once);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/no uses left/i);
  });

  it('admits only air-gapped runners to an air-gapped pool, and says so', async () => {
    const token = await fleet.mintToken('vault', '--uses', '1');
    const refused = await fleet.register('h5', token);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/air-gapped/);
    // The refusal did not spend the token's only use.
    const admitted = await fleet.register('h5', token, '--airgapped');
    expect(admitted.code, admitted.stderr).toBe(0);
    const runner = await fleet.rbtkJson<{ airgapped: boolean; pool: string }>(['runner', 'show', admitted.stdout.trim()]);
    expect(runner).toMatchObject({ airgapped: true, pool: 'vault' });
  });

  it('writes an audit row for every pool mutation, token mint and registration, without secrets', async () => {
    const token = await fleet.mintToken('reg');
    const audit = await fleet.rbtkJson<{ action: string; resourceType: string }[]>(['audit']);
    const actions = audit.map((a) => a.action);
    for (const action of ['pool.create', 'token.mint', 'runner.register']) expect(actions).toContain(action);
    expect(JSON.stringify(audit)).not.toContain(token);
    const onlyPools = await fleet.rbtkJson<{ resourceType: string }[]>(['audit', '--resource-type', 'pool']);
    expect(onlyPools.length).toBeGreaterThan(0);
    expect(onlyPools.every((a) => a.resourceType === 'pool')).toBe(true);
  });

  it('keeps projects apart: a project token sees nothing of another project', async () => {
    expect((await fleet.rbtk(['project', 'create', 'robotics'])).code).toBe(0);
    expect((await fleet.rbtk(['pool', 'create', 'sim', '--project', 'robotics'])).code).toBe(0);
    const minted = await fleet.rbtk(['token', 'create', '--role', 'admin', '--project', 'robotics']);
    expect(minted.code, minted.stderr).toBe(0);
    const projectToken = minted.stdout.trim();

    const own = await fleet.rbtk(['pool', 'list', '--json'], { RBTK_TOKEN: projectToken });
    expect((JSON.parse(own.stdout) as Pool[]).map((p) => p.name)).toEqual(['sim']);
    const other = await fleet.rbtk(['pool', 'list', '--project', 'default'], { RBTK_TOKEN: projectToken });
    expect(other.code).toBe(5);
    expect(other.stderr).toMatch(/robotics/);

    // Same pool name in two projects is fine; twice in one project is not.
    expect((await fleet.rbtk(['pool', 'create', 'sim'])).code).toBe(0);
    const dup = await fleet.rbtk(['pool', 'create', 'sim']);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/already exists/);
  });
});
