import type { AuditEntry, AuditResourceType } from '@rbtk/protocol';
import type { NewAuditRow } from './store/rows.js';
import type { Store } from './store/store.js';
import { toAuditEntry } from './wire.js';

/*
 * The audit trail. Changes that span several rows hand an audit row to the
 * store so it commits in the same transaction; auditRow() builds it.
 * Details never carry a secret: ids, names and reasons only.
 */

export type AuditAction =
  | 'project.create'
  | 'pool.create'
  | 'pool.update'
  | 'pool.delete'
  | 'token.mint'
  | 'token.create'
  | 'token.revoke'
  | 'runner.register'
  | 'runner.revoke'
  | 'runner.reap'
  | 'runner.drain'
  | 'runner.resume'
  | 'pool.drain'
  | 'pool.pause'
  | 'pool.resume';

export const SYSTEM_ACTOR = 'system';

export interface AuditInput {
  at: number;
  actor: string;
  action: AuditAction;
  resourceType: AuditResourceType;
  resourceId: string;
  project: string | null;
  details?: Record<string, unknown>;
}

export function auditRow(input: AuditInput): NewAuditRow {
  return { ...input, details: input.details ?? {} };
}

/** Writes one audit row on its own (for changes that are a single row). */
export async function writeAudit(store: Store, input: AuditInput): Promise<AuditEntry> {
  return toAuditEntry(await store.audit.insert(auditRow(input)));
}

export const DEFAULT_AUDIT_LIMIT = 100;
export const MAX_AUDIT_LIMIT = 1000;

export async function listAudit(
  store: Store,
  filter: { project: string; resourceType?: AuditResourceType; limit?: number },
): Promise<AuditEntry[]> {
  const limit = Math.min(filter.limit ?? DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT);
  const rows = await store.audit.list({ project: filter.project, resourceType: filter.resourceType, limit });
  return rows.map(toAuditEntry);
}
