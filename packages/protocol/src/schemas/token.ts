import { z } from 'zod';
import { Id, Name, PositiveDuration, Timestamp } from './common.js';

/** Body of POST /v1/pools/:name/tokens. */
export const RegistrationTokenCreate = z
  .object({
    /** How long the token stays valid, e.g. "1h". */
    ttl: PositiveDuration.default('1h'),
    /** How many registrations it admits; absent means unlimited until it expires. */
    uses: z.number().int().positive().optional(),
  })
  .strict();
export type RegistrationTokenCreate = z.infer<typeof RegistrationTokenCreate>;
export type RegistrationTokenCreateInput = z.input<typeof RegistrationTokenCreate>;

export const RegistrationToken = z.object({
  id: Id,
  pool: Name,
  project: Name,
  expiresAt: Timestamp,
  usesLeft: z.number().int().nullable(),
  /** The secret; present only in the response that minted it. */
  token: z.string().optional(),
});
export type RegistrationToken = z.infer<typeof RegistrationToken>;

export const ApiTokenRole = z.enum(['admin', 'submitter']);
export type ApiTokenRole = z.infer<typeof ApiTokenRole>;

/** Body of POST /v1/tokens. */
export const ApiTokenCreate = z
  .object({
    role: ApiTokenRole,
    name: z.string().min(1).max(128).optional(),
    /** How long the token stays valid, e.g. "30d"; absent: until revoked. */
    ttl: PositiveDuration.optional(),
    /**
     * An instance-wide admin token (no project, like the one written on first start), so that
     * one can be replaced and then revoked. Only the instance admin may ask; role must be admin.
     */
    instance: z.boolean().optional(),
  })
  .strict();
export type ApiTokenCreate = z.infer<typeof ApiTokenCreate>;

export const ApiToken = z.object({
  id: Id,
  role: ApiTokenRole,
  /** null for an instance-wide admin token (the one created on first start, or `instance: true`). */
  project: Name.nullable(),
  name: z.string().nullable(),
  createdAt: Timestamp,
  /** null: valid until revoked. Optional for coordinators that predate expiry. */
  expiresAt: Timestamp.nullable().optional(),
  /** Last authenticated use, to the minute (null: never); optional as expiresAt. */
  lastUsedAt: Timestamp.nullable().optional(),
  /** Set in the answer to a revoke. */
  revokedAt: Timestamp.nullable().optional(),
  /** The secret; present only in the response that created it. */
  token: z.string().optional(),
});
export type ApiToken = z.infer<typeof ApiToken>;
