import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { DEFAULT_LISTEN, ErrorCode, RbtkError, SubmitterClient } from '@rbtk/protocol';
import { ApiClient } from '../../client/api-client.js';
import { UsageError } from './exit-codes.js';
import { parseName, parseUrl } from './parse.js';

/** Everything rbtk touches outside itself, handed in by cli/rbtk.ts (and by tests). */
export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  now: () => number;
}

export interface GlobalOptions {
  url: string;
  token?: string;
  project?: string;
  json?: boolean;
}

export const DEFAULT_URL = `http://${DEFAULT_LISTEN}`;
/** Where `rbtk-coordinator serve` writes the instance admin token with its default data dir. */
export const DEFAULT_TOKEN_FILE = '.data/admin.token';

/** The options every command takes; declared once on the root, shown in every command's help. */
export function addGlobalOptions(program: Command): void {
  program
    .addOption(new Option('--url <url>', 'coordinator base URL').env('RBTK_URL').default(DEFAULT_URL).argParser(parseUrl))
    .addOption(
      new Option('--token <token>', `API token; if unset, read from the file named by RBTK_TOKEN_FILE, else from ./${DEFAULT_TOKEN_FILE} if present`)
        .env('RBTK_TOKEN'),
    )
    .addOption(
      new Option('--project <name>', "project to act on (default: the token's project, else \"default\")")
        .env('RBTK_PROJECT')
        .argParser(parseName),
    )
    .addOption(
      new Option('--json', "print the API's JSON instead of text: one pretty-printed document; with --follow, NDJSON (one watch event per line)"),
    );
}

export function globalOptions(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

interface ResolvedToken {
  token: string;
  source: string;
}

/** --token / RBTK_TOKEN, else the file named by RBTK_TOKEN_FILE, else ./.data/admin.token when it exists. */
export function resolveToken(opts: GlobalOptions, io: Io): ResolvedToken | undefined {
  if (opts.token) return { token: opts.token.trim(), source: '--token or RBTK_TOKEN' };
  const named = io.env.RBTK_TOKEN_FILE;
  if (named) {
    const path = resolve(io.cwd, named);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read RBTK_TOKEN_FILE ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (text.trim() === '') throw new UsageError(`RBTK_TOKEN_FILE ${path} is empty`);
    return { token: text.trim(), source: path };
  }
  const fallback = resolve(io.cwd, DEFAULT_TOKEN_FILE);
  try {
    const text = readFileSync(fallback, 'utf8').trim();
    return text === '' ? undefined : { token: text, source: fallback };
  } catch {
    return undefined;
  }
}

/**
 * Runs `fn` with an ApiClient built from the global options, and closes it after.
 * A request that would go without a token fails here with exit code 5, before any request.
 */
export async function withClient<T>(cmd: Command, io: Io, fn: (client: ApiClient, opts: GlobalOptions) => Promise<T>): Promise<T> {
  const opts = globalOptions(cmd);
  const token = requireToken(opts, io);
  const client = new ApiClient({ url: opts.url, token: token.token, project: opts.project });
  try {
    return await fn(client, opts);
  } catch (err) {
    throw namingTokenSource(err, token);
  } finally {
    await client.close();
  }
}

/** withClient for the job socket (`/v1/jobs/ws`): submit --follow and logs --follow. */
export async function withSubmitterClient<T>(
  cmd: Command,
  io: Io,
  fn: (client: SubmitterClient, opts: GlobalOptions) => Promise<T>,
): Promise<T> {
  const opts = globalOptions(cmd);
  const token = requireToken(opts, io);
  let client: SubmitterClient | undefined;
  try {
    client = await SubmitterClient.connect({ url: opts.url, token: token.token, project: opts.project });
    return await fn(client, opts);
  } catch (err) {
    throw namingTokenSource(err, token);
  } finally {
    await client?.close();
  }
}

function requireToken(opts: GlobalOptions, io: Io): ResolvedToken {
  const token = resolveToken(opts, io);
  if (!token) {
    throw new RbtkError(ErrorCode.Unauthorized,
      `no API token: pass --token, set RBTK_TOKEN or RBTK_TOKEN_FILE, or run where ./${DEFAULT_TOKEN_FILE} exists`, 401);
  }
  return token;
}

/** Says which token was refused: the silent ./.data/admin.token fallback is otherwise a puzzle. */
function namingTokenSource(err: unknown, token: ResolvedToken): unknown {
  if (err instanceof RbtkError && err.status === 401) {
    return new RbtkError(err.code, `${err.message} (token from ${token.source})`, err.status, err.details);
  }
  return err;
}

/** `--json` output: one pretty-printed document (`--follow` streams NDJSON instead: job-follow.ts). */
export function printJson(io: Io, value: unknown): void {
  io.stdout(`${JSON.stringify(value, null, 2)}\n`);
}
