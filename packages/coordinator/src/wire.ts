import type { ApiToken, AuditEntry, Job, LogChunk, Pool, Project, RegistrationToken, Runner } from '@rbtk/protocol';
import { drainReasons } from './drain.js';
import type { JobRecord, LogChunkRow } from './store/job-rows.js';
import type { ApiTokenRow, AuditRow, PoolRecord, ProjectRow, RegistrationTokenRecord, RunnerRecord } from './store/rows.js';

/*
 * Store records -> protocol types, in one place. Times become ISO-8601, pools
 * are named instead of numbered, hashes never leave.
 */

const iso = (ms: number): string => new Date(ms).toISOString();

export function toProject(row: ProjectRow): Project {
  return { name: row.name, createdAt: iso(row.createdAt) };
}

export function toPool(row: PoolRecord): Pool {
  return {
    name: row.name,
    project: row.project,
    type: row.type,
    status: row.status,
    tags: row.tags,
    airgapped: row.airgapped,
    allowNonAirgappedJobs: row.allowNonAirgappedJobs,
    dockerNetwork: row.dockerNetwork,
    runners: { ...row.counts },
    ...(row.hostedSpec ? { hosted: row.hostedSpec } : {}),
    createdAt: iso(row.createdAt),
    updatedAt: iso(row.updatedAt),
  };
}

/** `connected`: whether the runner holds a live WebSocket session on this coordinator. */
export function toRunner(row: RunnerRecord, connected: boolean): Runner {
  return {
    id: row.id,
    name: row.name,
    pool: row.poolName,
    project: row.project,
    status: row.status,
    labels: row.labels,
    airgapped: row.airgapped,
    connected,
    agentVersion: row.agentVersion,
    host: row.host,
    registeredAt: iso(row.registeredAt),
    lastHeartbeatAt: row.lastHeartbeatAt === null ? null : iso(row.lastHeartbeatAt),
    gpus: row.capabilities?.gpus?.gpus ?? [],
    gpuUsable: row.capabilities?.gpus?.usable ?? false,
    gpuUnusableReason: row.capabilities?.gpus?.reason ?? null,
    drainReason: drainReasons(row).join('; ') || null,
  };
}

/** `token` is passed only in the response that minted it. */
export function toRegistrationToken(row: RegistrationTokenRecord, token?: string): RegistrationToken {
  return {
    id: row.id,
    pool: row.poolName,
    project: row.project,
    expiresAt: iso(row.expiresAt),
    usesLeft: row.usesLeft,
    ...(token === undefined ? {} : { token }),
  };
}

export function toApiToken(row: ApiTokenRow, token?: string): ApiToken {
  return {
    id: row.id,
    role: row.role,
    project: row.project,
    name: row.name,
    createdAt: iso(row.createdAt),
    expiresAt: isoOrNull(row.expiresAt),
    lastUsedAt: isoOrNull(row.lastUsedAt),
    ...(row.revokedAt === null ? {} : { revokedAt: iso(row.revokedAt) }),
    ...(token === undefined ? {} : { token }),
  };
}

export function toAuditEntry(row: AuditRow): AuditEntry {
  return {
    id: row.id,
    at: iso(row.at),
    actor: row.actor,
    action: row.action,
    resourceType: row.resourceType,
    resourceId: row.resourceId,
    project: row.project,
    details: row.details,
  };
}

const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

export function toJob(row: JobRecord): Job {
  return {
    id: row.id,
    project: row.project,
    pool: row.poolName,
    state: row.state,
    spec: row.spec,
    attempt: row.attempt,
    runnerId: row.runnerId,
    exitCode: row.exitCode,
    reason: row.reason,
    logBytes: row.logBytes,
    createdAt: iso(row.createdAt),
    startedAt: isoOrNull(row.startedAt),
    finishedAt: isoOrNull(row.finishedAt),
  };
}

/**
 * A stored chunk as seen from byte `from`: a chunk that straddles it is cut
 * there (at the start of the character it falls in), so a reader resuming mid-chunk gets each byte once.
 */
export function toLogChunk(row: LogChunkRow, from = 0): LogChunk {
  if (from <= row.offset) return { jobId: row.jobId, offset: row.offset, stream: row.stream, data: row.data };
  const bytes = Buffer.from(row.data, 'utf8');
  // A cut inside a character moves back to where it starts: the chunk stays valid UTF-8 and its offset
  // true, so a reader counting bytes of `data` from `offset` stays in step (it drops what it had).
  let cut = from - row.offset;
  while (cut > 0 && cut < bytes.length && (bytes[cut]! & 0xc0) === 0x80) cut--;
  return { jobId: row.jobId, offset: row.offset + cut, stream: row.stream, data: bytes.subarray(cut).toString('utf8') };
}
