import { beforeEach } from 'vitest';
import { spawnedProcesses } from './processes.js';

/*
 * When a test fails, print what each process it ran said during the test (the
 * last lines). An end-to-end failure ("job never finished") says nothing by
 * itself; the coordinator's and runner's own logs say why, and CI keeps only
 * the test output. Processes stopped by the test's own hooks count too.
 */
const LINES = 40;

beforeEach((ctx) => {
  const from = new Map(spawnedProcesses().map((p) => [p, p.output.length]));
  ctx.onTestFailed(() => {
    for (const proc of spawnedProcesses()) {
      const lines = proc.output.slice(from.get(proc) ?? 0).slice(-LINES);
      if (lines.length > 0) console.error(`--- ${ctx.task.name}: last ${lines.length} lines of ${proc.name} ---\n${lines.join('\n')}`);
    }
  });
});
