import { join } from 'node:path';
import { type AuditEntry, type HostedPoolStatus, type Pool, type Runner, TokenKind } from '@rbtk/protocol';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containersLabelled, ensureTestImage, removeContainersLabelled, requireDocker, TEST_IMAGE } from '../packages/agent/test/helpers/docker.js';
import { mintToken, randomId } from '../packages/coordinator/src/auth/secrets.js';
import { DATABASE_FILE } from '../packages/coordinator/src/coordinator.js';
import { SqliteStore } from '../packages/coordinator/src/store/sqlite/sqlite-store.js';
import { newRunnerRow } from '../packages/coordinator/test/store-helpers.js';
import { DockerEndpoint } from './helpers/docker-endpoint.js';
import { type CoordinatorFlags, Fleet } from './helpers/fleet.js';
import { waitFor } from './helpers/processes.js';

/*
 * Runners left behind by a hosted create that did not finish. A coordinator
 * SIGKILLed while a member's create hangs in dockerd (its runner registered,
 * no container yet), and a runner whose member row was never written (the
 * crash a moment earlier, put in the store as registerRunner writes it):
 * the restarted coordinator removes both, with their audit rows, and the pool
 * fills again. A real coordinator process; dockerd through helpers/docker-endpoint.ts.
 */

const haveDocker = await requireDocker('hosted member runners left by a crash');
const FLAGS = { offlineAfter: '3s', heartbeatInterval: '200ms', reconcileInterval: '1s' };

describe.runIf(haveDocker)('hosted pools: a create cut short by a crash leaves no runner behind', () => {
  const docker = new Docker();
  let fleet: Fleet;
  let endpoint: DockerEndpoint;
  let owner: string;

  const status = async () => (await fleet.rbtkJson<Pool & { hostedStatus: HostedPoolStatus }>(['pool', 'show', 'cut'])).hostedStatus;
  const runners = () => fleet.rbtkJson<Runner[]>(['runner', 'list', '--pool', 'cut']);
  // One object for both starts: startCoordinator records the first one's port in it, so the second
  // listens where the members were told to connect.
  let flags: CoordinatorFlags;
  const start = () => fleet.startCoordinator(flags);

  beforeAll(async () => {
    await ensureTestImage(docker);
    fleet = await Fleet.create();
    owner = join(fleet.dataDir, 'hosted-docker');
    endpoint = new DockerEndpoint(join(fleet.dir, 'docker.sock'));
    await endpoint.listen();
    flags = { ...FLAGS, env: { DOCKER_HOST: endpoint.dockerHost, RBTK_HOSTED_DOCKER_AGENT: 'host' } };
    // Lists and the rest answer; a container create is taken and never answered (its deadline is 120 s).
    endpoint.mode = 'hang-create';
    await start();
  });

  afterAll(async () => {
    const leftover = fleet ? await fleet.close() : [];
    await endpoint?.close();
    if (owner) await removeContainersLabelled(`rbtk.hosted.owner=${owner}`, docker);
    expect(leftover).toEqual([]);
  });

  it('SIGKILLed during a create and restarted: the runners with no member behind them go, with audit rows', async () => {
    const created = await fleet.rbtk(['pool', 'create', 'cut', '--type', 'hosted', '--provider', 'docker', '--image', TEST_IMAGE, '--target', '1']);
    expect(created.code, created.stderr).toBe(0);
    const cut = await waitFor('a member warming with its runner, its create held', async () => {
      const s = await status();
      const m = s.members[0];
      return m?.state === 'warming' && m.runnerId && endpoint.held.some((r) => r.includes('/containers/create')) ? m : undefined;
    }, 20_000, 100);
    expect((await runners()).map((r) => r.id)).toEqual([cut.runnerId]);

    fleet.coordinator.kill('SIGKILL');
    await fleet.coordinator.exited;

    // A moment earlier, the crash would have left a runner no member row names: written as registerRunner writes it.
    const store = SqliteStore.open(join(fleet.dataDir, DATABASE_FILE));
    const orphanId = randomId(16);
    try {
      const pool = (await store.pools.get('default', 'cut'))!;
      const token = mintToken(TokenKind.Runner);
      const at = Date.now() - 1000;
      const result = await store.runners.register({
        registrationTokenId: null,
        now: at,
        runner: newRunnerRow({ id: orphanId, poolId: pool.id, name: `cut-m${randomId(10).toLowerCase()}`, registeredAt: at }),
        token: { id: token.id, runnerId: orphanId, hash: token.hash, state: 'current', createdAt: at },
        audit: { at, actor: 'hosted:cut', action: 'runner.register', resourceType: 'runner', resourceId: orphanId, project: 'default', details: {} },
      });
      expect(result).toBe('registered');
    } finally {
      await store.close();
    }

    endpoint.mode = 'forward';
    await start();
    // Its create did not finish: the member failed, its runner revoked; the runner with no member is revoked too.
    const refilled = await waitFor('both runners gone, a new member ready', async () => {
      const s = await status();
      const ids = (await runners()).map((r) => r.id);
      const fresh = s.members.length === 1 && s.counts.ready === 1 && s.members[0]!.id !== cut.id;
      return fresh && !ids.includes(cut.runnerId!) && !ids.includes(orphanId) ? { s, ids } : undefined;
    }, 60_000, 200);
    expect(refilled.ids).toEqual([refilled.s.members[0]!.runnerId]);
    const audit = await fleet.rbtkJson<AuditEntry[]>(['audit', '--resource-type', 'runner']);
    const revokes = audit.filter((a) => a.action === 'runner.revoke');
    expect(revokes.find((a) => a.resourceId === cut.runnerId)?.details).toMatchObject({
      reason: 'hosted member create failed',
      member: cut.id,
      error: 'its create did not finish: the coordinator stopped during it',
    });
    expect(revokes.find((a) => a.resourceId === orphanId)?.details.reason).toBe('hosted member runner orphaned: no member, never connected');
    expect(revokes.every((a) => a.actor === 'hosted')).toBe(true);

    const zero = await fleet.rbtk(['pool', 'update', 'cut', '--target', '0']);
    expect(zero.code, zero.stderr).toBe(0);
    await waitFor('empty', async () => (await status()).members.length === 0, 30_000, 200);
    expect(await containersLabelled(`rbtk.hosted.owner=${owner}`, docker)).toEqual([]);
    expect(await runners()).toEqual([]);
  }, 120_000);
});
