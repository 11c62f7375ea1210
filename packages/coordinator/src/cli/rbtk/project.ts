import type { Command } from 'commander';
import { printJson, withClient, type Io } from './context.js';
import { formatTable, formatTime } from './format.js';
import { parseName } from './parse.js';

/** `rbtk project create|list`: projects are instance-wide, so these calls carry no ?project=. */
export function registerProjectCommands(program: Command, io: Io): void {
  const project = program.command('project').description('manage projects (instance admin token)');

  project
    .command('create')
    .description('create a project')
    .argument('<name>', 'project name', parseName)
    .action((name: string, _opts: unknown, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const created = await client.createProject(name);
        if (opts.json) printJson(io, created);
        else io.stdout(`created project ${created.name}\n`);
      }),
    );

  project
    .command('list')
    .description('list projects')
    .action((_opts: unknown, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const projects = await client.listProjects();
        if (opts.json) return printJson(io, projects);
        if (projects.length === 0) return io.stderr('no projects\n');
        io.stdout(formatTable(['NAME', 'CREATED'], projects.map((p) => [p.name, formatTime(p.createdAt)])));
      }),
    );
}
