import { Option, type Command } from 'commander';
import { AuditResourceType, type AuditEntry } from '@rbtk/protocol';
import { printJson, withClient, type Io } from './context.js';
import { formatDetails, formatTable, formatTime } from './format.js';
import { parsePositiveInt } from './parse.js';

interface AuditOptions {
  resourceType?: AuditResourceType;
  limit?: number;
}

function auditRow(e: AuditEntry): string[] {
  return [String(e.id), formatTime(e.at), e.actor, e.action, `${e.resourceType}/${e.resourceId}`, formatDetails(e.details)];
}

/** `rbtk audit`: the latest audit rows of the project, oldest first. */
export function registerAuditCommand(program: Command, io: Io): void {
  program
    .command('audit')
    .description('show the latest audit rows of the project, oldest first')
    .addOption(new Option('--resource-type <type>', 'only rows about this kind of resource').choices(AuditResourceType.options))
    .option('--limit <n>', 'how many of the latest rows (default: 100)', parsePositiveInt)
    .action((o: AuditOptions, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const entries = await client.listAudit({ resourceType: o.resourceType, limit: o.limit });
        if (opts.json) return printJson(io, entries);
        if (entries.length === 0) return io.stderr('no audit rows\n');
        io.stdout(formatTable(['ID', 'TIME', 'ACTOR', 'ACTION', 'RESOURCE', 'DETAILS'], entries.map(auditRow)));
      }),
    );
}
