import type { NewAuditRow, ProjectRow } from '../rows.js';
import type { ProjectStore } from '../store.js';
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
