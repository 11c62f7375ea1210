import type { Command } from 'commander';
import { resolveConfigPath } from '../config/paths.js';
import type { DoctorReport } from '../doctor/doctor.js';
import { EXIT } from './exit-codes.js';

export function addDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('check that this host can run its jobs: config, coordinator, Docker, GPUs, air-gapped rules (exit 0 yes, 1 no)')
    .option('--config <path>', 'runner.yaml (default $RBTK_RUNNER_CONFIG or /etc/rbtk-runner/runner.yaml)')
    .option('--json', 'print the checks as JSON')
    .action(async (flags: { config?: string; json?: boolean }) => {
      const { runDoctor } = await import('../doctor/doctor.js');
      const report = await runDoctor({ configPath: resolveConfigPath(flags.config) });
      process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
      process.exitCode = report.ok ? EXIT.OK : EXIT.ERROR;
    });
}

const MARK = { ok: 'ok  ', fail: 'FAIL', skip: '-   ' } as const;

function formatReport(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((c) => c.name.length)) + 2;
  const lines = report.checks.map((c) => {
    const line = `${MARK[c.status]} ${c.name.padEnd(width)}${c.verdict}\n`;
    return c.fix ? `${line}     ${''.padEnd(width)}fix: ${c.fix}\n` : line;
  });
  const failed = report.checks.filter((c) => c.status === 'fail').length;
  lines.push(report.ok ? 'this host can run its jobs\n' : `${failed} check${failed === 1 ? '' : 's'} failed\n`);
  return lines.join('');
}
