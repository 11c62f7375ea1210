import type { ApiTokenRole } from '@rbtk/protocol';
import type { ApiTokenRow, NewAuditRow, ProjectRow } from '../rows.js';
import type { ApiTokenStore, ProjectStore } from '../store.js';
import { insertAuditRow } from './audit.js';
import { type Db, isUniqueViolation, stmt } from './db.js';

interface ProjectSql {
  name: string;
  created_at: number;
}

const project = (r: ProjectSql): ProjectRow => ({ name: r.name, createdAt: r.created_at });

export class SqliteProjectStore implements ProjectStore {
  constructor(private readonly db: Db) {}

  async list(): Promise<ProjectRow[]> {
    return (stmt(this.db, 'SELECT * FROM projects ORDER BY name').all() as ProjectSql[]).map(project);
  }

  async get(name: string): Promise<ProjectRow | null> {
    const r = stmt(this.db, 'SELECT * FROM projects WHERE name = ?').get(name) as ProjectSql | undefined;
    return r ? project(r) : null;
  }

  async create(row: ProjectRow, audit?: NewAuditRow): Promise<boolean> {
    try {
      this.db.transaction(() => {
        stmt(this.db, 'INSERT INTO projects (name, created_at) VALUES (?, ?)').run(row.name, row.createdAt);
        if (audit) insertAuditRow(this.db, audit);
      })();
      return true;
    } catch (err) {
      if (isUniqueViolation(err)) return false;
      throw err;
    }
  }
}

interface ApiTokenSql {
  id: string;
  hash: string;
  role: string;
  project: string | null;
  name: string | null;
  created_at: number;
}

const apiToken = (r: ApiTokenSql): ApiTokenRow => ({
  id: r.id,
  hash: r.hash,
  role: r.role as ApiTokenRole,
  project: r.project,
  name: r.name,
  createdAt: r.created_at,
});

export class SqliteApiTokenStore implements ApiTokenStore {
  constructor(private readonly db: Db) {}

  async insert(row: ApiTokenRow, audit?: NewAuditRow): Promise<void> {
    this.db.transaction(() => {
      stmt(this.db, 'INSERT INTO api_tokens (id, hash, role, project, name, created_at) VALUES (?, ?, ?, ?, ?, ?)').run(
        row.id,
        row.hash,
        row.role,
        row.project,
        row.name,
        row.createdAt,
      );
      if (audit) insertAuditRow(this.db, audit);
    })();
  }

  async get(id: string): Promise<ApiTokenRow | null> {
    const r = stmt(this.db, 'SELECT * FROM api_tokens WHERE id = ?').get(id) as ApiTokenSql | undefined;
    return r ? apiToken(r) : null;
  }

  async hasInstanceAdmin(): Promise<boolean> {
    return stmt(this.db, "SELECT 1 FROM api_tokens WHERE role = 'admin' AND project IS NULL LIMIT 1").get() !== undefined;
  }
}
