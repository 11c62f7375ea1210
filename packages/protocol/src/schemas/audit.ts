import { z } from 'zod';
import { Timestamp } from './common.js';

export const AuditResourceType = z.enum(['project', 'pool', 'runner', 'token']);
export type AuditResourceType = z.infer<typeof AuditResourceType>;

export const AuditEntry = z.object({
  id: z.number().int(),
  at: Timestamp,
  /** Who did it: `admin:<token id>`, `runner:<id>`, or `system`. */
  actor: z.string(),
  action: z.string(),
  resourceType: AuditResourceType,
  resourceId: z.string(),
  project: z.string().nullable(),
  details: z.record(z.string(), z.unknown()),
});
export type AuditEntry = z.infer<typeof AuditEntry>;
