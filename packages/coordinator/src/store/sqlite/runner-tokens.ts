import type { RunnerTokenRow, RunnerTokenState } from '../rows.js';
import type { RunnerTokenStore } from '../store.js';
import { type Db, stmt } from './db.js';
import type { GroupCommit } from './group-commit.js';

interface RunnerTokenSql {
  id: string;
  runner_id: string | null;
  hash: string;
  state: string;
  created_at: number;
}

const token = (r: RunnerTokenSql): RunnerTokenRow => ({
  id: r.id,
  runnerId: r.runner_id,
  hash: r.hash,
  state: r.state as RunnerTokenState,
  createdAt: r.created_at,
});

export class SqliteRunnerTokenStore implements RunnerTokenStore {
  /**
   * Rotation writes (a pending token on a heartbeat, its promotion on the
   * confirm) of one event-loop turn share one commit with each other and with
   * heartbeats (`sessionWrites`, SqliteRunnerStore's too); each caller goes on
   * (sends the token, confirms it) only once its write is on disk.
   */
  constructor(
    private readonly db: Db,
    private readonly group: GroupCommit,
  ) {}

  async get(id: string): Promise<RunnerTokenRow | null> {
    const r = stmt(this.db, 'SELECT * FROM runner_tokens WHERE id = ?').get(id) as RunnerTokenSql | undefined;
    return r ? token(r) : null;
  }

  async current(runnerId: string): Promise<RunnerTokenRow | null> {
    const r = stmt(this.db, "SELECT * FROM runner_tokens WHERE runner_id = ? AND state = 'current'").get(runnerId) as
      | RunnerTokenSql
      | undefined;
    return r ? token(r) : null;
  }

  async addPending(row: RunnerTokenRow, maxPending: number | undefined): Promise<void> {
    await this.group.run(() => {
      stmt(this.db, "INSERT INTO runner_tokens (id, runner_id, hash, state, created_at) VALUES (?, ?, ?, 'pending', ?)").run(
        row.id,
        row.runnerId,
        row.hash,
        row.createdAt,
      );
      if (maxPending !== undefined) this.trim(row.runnerId!, 'pending', maxPending);
    });
  }

  /**
   * Deletes the runner's oldest tokens in `state` beyond the newest `keep`.
   * Counted first: usually there is nothing (pending) or one (superseded) to
   * delete, and a DELETE ... NOT IN (newest keep) cost 65 µs a rotation, as
   * much as the rest of it.
   */
  private trim(runnerId: string, state: 'pending' | 'superseded', keep: number): void {
    const count = stmt(this.db, 'SELECT COUNT(*) FROM runner_tokens WHERE runner_id = ? AND state = ?').pluck().get(runnerId, state) as number;
    if (count <= keep) return;
    stmt(
      this.db,
      `DELETE FROM runner_tokens WHERE rowid IN (
         SELECT rowid FROM runner_tokens WHERE runner_id = ? AND state = ? ORDER BY created_at, rowid LIMIT ?)`,
    ).run(runnerId, state, count - keep);
  }

  async promote(runnerId: string, tokenId: string, keepSuperseded: number): Promise<boolean> {
    return this.group.run((): boolean => {
      const pending = stmt(
        this.db,
        "SELECT 1 FROM runner_tokens WHERE id = ? AND runner_id = ? AND state = 'pending'",
      ).get(tokenId, runnerId);
      if (!pending) return false;
      stmt(this.db, "UPDATE runner_tokens SET state = 'superseded' WHERE runner_id = ? AND state = 'current'").run(runnerId);
      stmt(this.db, "UPDATE runner_tokens SET state = 'current' WHERE id = ?").run(tokenId);
      stmt(this.db, "DELETE FROM runner_tokens WHERE runner_id = ? AND state = 'pending'").run(runnerId);
      // Enough superseded rows to catch a stolen token replayed soon after; not an unbounded history.
      this.trim(runnerId, 'superseded', keepSuperseded);
      return true;
    });
  }

  async pruneRevoked(before: number): Promise<number> {
    // Tombstones have no runner (revoke deletes it: ON DELETE SET NULL), so the runner_id index finds
    // them: a scan of every token ran each liveness tick, ~30 ms at 10,000 rotating runners.
    return stmt(this.db, "DELETE FROM runner_tokens WHERE runner_id IS NULL AND state = 'revoked' AND revoked_at <= ?").run(
      before,
    ).changes;
  }
}
