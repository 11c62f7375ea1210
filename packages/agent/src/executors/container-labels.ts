/**
 * Labels on every job container, so a restarted runner finds its own leftovers.
 * A module of its own: the leftover cleanup needs them without loading dockerode.
 */
export const LABELS = { runner: 'rbtk.runner', job: 'rbtk.job', attempt: 'rbtk.attempt' } as const;
