import type { RunnerTokenRow, RunnerTokenState } from '../rows.js';
import type { RunnerTokenStore } from '../store.js';
import { type Db, stmt } from './db.js';
import { GroupCommit } from './group-commit.js';

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
   * confirm) of one event-loop turn share one commit; each caller goes on
   * (sends the token, confirms it) only once its write is on disk.
   */
  private readonly group: GroupCommit;

  constructor(private readonly db: Db) {
    this.group = new GroupCommit(db);
  }

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

  async addPending(row: RunnerTokenRow, maxPending: number): Promise<void> {
    await this.group.run(() => {
      stmt(this.db, "INSERT INTO runner_tokens (id, runner_id, hash, state, created_at) VALUES (?, ?, ?, 'pending', ?)").run(
        row.id,
        row.runnerId,
        row.hash,
        row.createdAt,
      );
      stmt(
        this.db,
        `DELETE FROM runner_tokens WHERE runner_id = @runner AND state = 'pending' AND id NOT IN (
           SELECT id FROM runner_tokens WHERE runner_id = @runner AND state = 'pending'
           ORDER BY created_at DESC, rowid DESC LIMIT @keep)`,
      ).run({ runner: row.runnerId, keep: maxPending });
    });
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
      stmt(
        this.db,
        `DELETE FROM runner_tokens WHERE runner_id = @runner AND state = 'superseded' AND id NOT IN (
           SELECT id FROM runner_tokens WHERE runner_id = @runner AND state = 'superseded'
           ORDER BY created_at DESC, rowid DESC LIMIT @keep)`,
      ).run({ runner: runnerId, keep: keepSuperseded });
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
