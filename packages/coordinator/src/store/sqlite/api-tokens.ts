import type { ApiTokenRole } from '@rbtk/protocol';
import type { ApiTokenRow, NewAuditRow } from '../rows.js';
import type { ApiTokenFilter, ApiTokenStore, RevokeApiTokenResult } from '../store.js';
import { insertAuditRow } from './audit.js';
import { type Db, stmt } from './db.js';
import type { GroupCommit } from './group-commit.js';

interface ApiTokenSql {
  id: string;
  hash: string;
  role: string;
  project: string | null;
  name: string | null;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
}

const apiToken = (r: ApiTokenSql): ApiTokenRow => ({
  id: r.id,
  hash: r.hash,
  role: r.role as ApiTokenRole,
  project: r.project,
  name: r.name,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  lastUsedAt: r.last_used_at,
  revokedAt: r.revoked_at,
});

/** Instance admin tokens that still let someone in at @now. */
const LIVE_INSTANCE_ADMINS = `SELECT COUNT(*) FROM api_tokens
  WHERE role = 'admin' AND project IS NULL AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > @now)`;

export class SqliteApiTokenStore implements ApiTokenStore {
  /** `touches`: the group commit heartbeats use; a last-used stamp needs no fsync of its own. */
  constructor(
    private readonly db: Db,
    private readonly touches: GroupCommit,
  ) {}

  async insert(row: ApiTokenRow, audit?: NewAuditRow): Promise<void> {
    this.db.transaction(() => {
      stmt(
        this.db,
        `INSERT INTO api_tokens (id, hash, role, project, name, created_at, expires_at, last_used_at, revoked_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(row.id, row.hash, row.role, row.project, row.name, row.createdAt, row.expiresAt, row.lastUsedAt, row.revokedAt);
      if (audit) insertAuditRow(this.db, audit);
    })();
  }

  async get(id: string): Promise<ApiTokenRow | null> {
    const r = stmt(this.db, 'SELECT * FROM api_tokens WHERE id = ?').get(id) as ApiTokenSql | undefined;
    return r ? apiToken(r) : null;
  }

  async list(filter: ApiTokenFilter): Promise<ApiTokenRow[]> {
    const rows = stmt(
      this.db,
      `SELECT * FROM api_tokens WHERE revoked_at IS NULL AND (project = @project OR (@instanceWide AND project IS NULL))
       ORDER BY created_at, id`,
    ).all({ project: filter.project, instanceWide: filter.instanceWide ? 1 : 0 }) as ApiTokenSql[];
    return rows.map(apiToken);
  }

  async touch(id: string, now: number): Promise<void> {
    await this.touches.run(() => stmt(this.db, 'UPDATE api_tokens SET last_used_at = ? WHERE id = ?').run(now, id), {
      durable: false,
    });
  }

  async revoke(id: string, project: string | null, now: number, audit: (token: ApiTokenRow) => NewAuditRow): Promise<RevokeApiTokenResult> {
    // IMMEDIATE: the count of instance admins left and the revoke are one decision; no other writer slips between.
    return this.db
      .transaction((): RevokeApiTokenResult => {
        const r = stmt(this.db, 'SELECT * FROM api_tokens WHERE id = ?').get(id) as ApiTokenSql | undefined;
        if (!r || (project !== null && r.project !== project)) return { kind: 'not_found' };
        const token = apiToken(r);
        if (token.revokedAt !== null) return { kind: 'already_revoked', token };
        if (token.role === 'admin' && token.project === null) {
          const live = stmt(this.db, `${LIVE_INSTANCE_ADMINS} AND id != @id`).pluck().get({ now, id }) as number;
          if (live === 0) return { kind: 'last_instance_admin' };
        }
        stmt(this.db, 'UPDATE api_tokens SET revoked_at = ? WHERE id = ?').run(now, id);
        insertAuditRow(this.db, audit(token));
        return { kind: 'revoked', token: { ...token, revokedAt: now } };
      })
      .immediate();
  }

  async hasInstanceAdmin(now: number): Promise<boolean> {
    return (stmt(this.db, LIVE_INSTANCE_ADMINS).pluck().get({ now }) as number) > 0;
  }
}
