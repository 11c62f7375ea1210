import { resolve } from 'node:path';
import { DEFAULT_LISTEN } from '@rbtk/protocol';

/** Where `rbtk` looks for the admin token when neither --token nor RBTK_TOKEN_FILE is set. */
const RBTK_DEFAULT_TOKEN_FILE = '.data/admin.token';
const RBTK_DEFAULT_URL = `http://${DEFAULT_LISTEN}`;

export interface BannerFacts {
  url: string;
  dataDir: string;
  tokenFile: string;
  pool: string;
  runnerId: string;
  runnerName: string;
  runnerPid: number | undefined;
  executors: string[];
  /** Whether the runner was registered now or its runner.yaml reused. */
  reused: boolean;
  /** The directory the banner's command lines are meant to be pasted in. */
  cwd: string;
}

/** Quotes a word for sh when it needs it. */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * What `rbtk` needs in front of it to reach this fleet from `cwd`: nothing on
 * the defaults (127.0.0.1:7420, ./.data), else RBTK_URL and RBTK_TOKEN_FILE.
 */
export function rbtkEnvPrefix(url: string, tokenFile: string, cwd: string): string {
  const env: string[] = [];
  if (url !== RBTK_DEFAULT_URL) env.push(`RBTK_URL=${shellQuote(url)}`);
  if (resolve(cwd, RBTK_DEFAULT_TOKEN_FILE) !== resolve(tokenFile)) env.push(`RBTK_TOKEN_FILE=${shellQuote(resolve(tokenFile))}`);
  return env.length > 0 ? `${env.join(' ')} ` : '';
}

/** The ready-to-paste job line; tests run exactly this. */
export function helloCommand(facts: Pick<BannerFacts, 'url' | 'tokenFile' | 'pool' | 'cwd'>): string {
  return `${rbtkEnvPrefix(facts.url, facts.tokenFile, facts.cwd)}npx rbtk job submit --pool ${shellQuote(facts.pool)} --follow -- echo hello`;
}

export function formatBanner(facts: BannerFacts): string {
  const prefix = rbtkEnvPrefix(facts.url, facts.tokenFile, facts.cwd);
  const runner = `${facts.runnerName} (${facts.runnerId}${facts.runnerPid ? `, pid ${facts.runnerPid}` : ''}) in pool ${facts.pool}, executors ${facts.executors.join(', ')}${facts.reused ? ' (registration reused)' : ''}`;
  const lines = [
    '',
    'rbtk dev fleet is up',
    `  coordinator  ${facts.url}  (state in ${facts.dataDir})`,
    `  admin token  ${facts.tokenFile}`,
    `  runner       ${runner}`,
    '',
    'Run a job (in another terminal, from this directory):',
    '',
    `  ${helloCommand(facts)}`,
  ];
  if (facts.executors.includes('docker')) {
    lines.push(`  ${prefix}npx rbtk job submit --pool ${shellQuote(facts.pool)} --image busybox --pull if-not-present --follow -- echo hello`);
  }
  lines.push(
    `  ${prefix}npx rbtk runner list`,
    '',
    'Ctrl-C drains the runner, then stops it and the coordinator (Ctrl-C again: stop its jobs).',
    '',
  );
  return lines.join('\n');
}
