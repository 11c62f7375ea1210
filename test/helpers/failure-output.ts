import { afterEach } from 'vitest';
import { liveProcesses } from './processes.js';

/*
 * When a test fails, print the last lines of every process it still has
 * running. An end-to-end failure ("job never finished") says nothing by itself;
 * the coordinator's and runner's own logs say why, and CI keeps only stdout.
 */
const LINES = 40;

afterEach((ctx) => {
  if (ctx.task.result?.state !== 'fail') return;
  for (const proc of liveProcesses()) {
    const tail = proc.output.slice(-LINES).join('\n');
    process.stderr.write(`\n--- ${ctx.task.name}: last ${LINES} lines of ${proc.name} (pid ${proc.pid}) ---\n${tail}\n`);
  }
});
