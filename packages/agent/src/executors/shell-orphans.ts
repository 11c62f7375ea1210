import { readdirSync, readFileSync } from 'node:fs';
import type { AttemptRef } from './executor.js';

/** Set in every shell job's environment: the job can read them, and a restarted runner finds its leftovers by them. */
export const JOB_ID_ENV = 'RBTK_JOB_ID';
export const JOB_ATTEMPT_ENV = 'RBTK_JOB_ATTEMPT';

export function attemptEnv(attempt: Pick<AttemptRef, 'jobId' | 'attempt'>): Record<string, string> {
  return { [JOB_ID_ENV]: attempt.jobId, [JOB_ATTEMPT_ENV]: String(attempt.attempt) };
}

/**
 * The process groups of an attempt's processes still running, found by their
 * environment in /proc (Linux; elsewhere none). For the one case where the
 * spool has no process group: rbtk-runner was killed after the job started
 * but before that was on disk.
 */
export function findAttemptProcessGroups(attempt: Pick<AttemptRef, 'jobId' | 'attempt'>): number[] {
  const wanted = Object.entries(attemptEnv(attempt)).map(([k, v]) => `${k}=${v}`);
  const groups = new Set<number>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0');
      if (!wanted.every((w) => env.includes(w))) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      // Fields after the command name (which may hold spaces): state, ppid, pgrp.
      const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      if (pgrp > 1) groups.add(pgrp);
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return [...groups];
}
