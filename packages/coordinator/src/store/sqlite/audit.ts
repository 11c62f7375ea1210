import type { AuditResourceType } from '@rbtk/protocol';
import type { AuditRow, NewAuditRow } from '../rows.js';
import type { AuditFilter, AuditStore } from '../store.js';
import { type Db, stmt } from './db.js';

interface AuditSql {
  id: number;
  at: number;
  actor: string;
  action: string;
  resource_type: string;
  resource_id: string;
  project: string | null;
  details: string;
}

function fromSql(r: AuditSql): AuditRow {
  return {
    id: r.id,
    at: r.at,
    actor: r.actor,
    action: r.action,
    resourceType: r.resource_type as AuditResourceType,
    resourceId: r.resource_id,
    project: r.project,
    details: JSON.parse(r.details) as Record<string, unknown>,
  };
}

/** Inserts one audit row; called inside the transaction of the change it records. */
export function insertAuditRow(db: Db, row: NewAuditRow): AuditRow {
  const info = stmt(
    db,
    `INSERT INTO audit (at, actor, action, resource_type, resource_id, project, details)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
  ).run(row.at, row.actor, row.action, row.resourceType, row.resourceId, row.project, JSON.stringify(row.details));
  return { ...row, id: Number(info.lastInsertRowid) };
}

export class SqliteAuditStore implements AuditStore {
  constructor(private readonly db: Db) {}

  async insert(row: NewAuditRow): Promise<AuditRow> {
    return insertAuditRow(this.db, row);
  }

  async list(filter: AuditFilter): Promise<AuditRow[]> {
    // The latest N, then back into ascending order so they read as a log.
    const rows = stmt(
      this.db,
      `SELECT * FROM (
         SELECT * FROM audit
         WHERE project = @project AND (@resourceType IS NULL OR resource_type = @resourceType)
         ORDER BY id DESC LIMIT @limit
       ) ORDER BY id ASC`,
    ).all({ project: filter.project, resourceType: filter.resourceType ?? null, limit: filter.limit }) as AuditSql[];
    return rows.map(fromSql);
  }
}
