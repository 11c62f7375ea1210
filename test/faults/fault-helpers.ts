import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { isTerminalJobState, type JobState } from '@rbtk/protocol';
import { parseDocument } from 'yaml';
import type { Fleet } from '../helpers/fleet.js';

export interface JobEvent {
  jobId: string;
  state: JobState;
  attempt: number;
  runnerId: string | null;
  reason: string | null;
}

/**
 * Every job's state changes as the coordinator recorded them (job_events),
 * read straight from its SQLite file: the record a fault test judges "exactly
 * once" by. WAL lets this reader look while the coordinator writes.
 */
export function jobEvents(fleet: Fleet): Map<string, JobEvent[]> {
  const db = new Database(join(fleet.dataDir, 'rbtk.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db
      .prepare(
        `SELECT j.id AS job_id, e.state, e.attempt, e.runner_id, e.reason
         FROM job_events e JOIN jobs j ON j.seq = e.job_seq ORDER BY e.id`,
      )
      .all() as {
      job_id: string;
      state: JobState;
      attempt: number;
      runner_id: string | null;
      reason: string | null;
    }[];
    const byJob = new Map<string, JobEvent[]>();
    for (const r of rows) {
      const list = byJob.get(r.job_id) ?? [];
      list.push({ jobId: r.job_id, state: r.state, attempt: r.attempt, runnerId: r.runner_id, reason: r.reason });
      byJob.set(r.job_id, list);
    }
    return byJob;
  } finally {
    db.close();
  }
}

export const terminalEvents = (events: JobEvent[] = []): JobEvent[] => events.filter((e) => isTerminalJobState(e.state));

/** Rewrites a registered runner's url in its runner.yaml (to go through a proxy), keeping the rest. */
export async function pointRunnerAt(fleet: Fleet, name: string, url: string): Promise<void> {
  const file = fleet.configPath(name);
  const doc = parseDocument(await readFile(file, 'utf8'));
  doc.set('url', url);
  await writeFile(file, doc.toString(), { mode: 0o600 });
}

/** The runner's status over REST (no CLI process per poll: fault tests poll a lot). */
export async function runnerStatus(fleet: Fleet, id: string): Promise<string | undefined> {
  const res = await fetch(`${fleet.url}/v1/runners/${id}`, { headers: { authorization: `Bearer ${fleet.adminToken}` } });
  return res.ok ? ((await res.json()) as { status: string }).status : undefined;
}
