import { readFileSync } from 'node:fs';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_RECONCILE_INTERVAL_MS } from '../../hosted/hosted-pools.js';
import { minimumTarget } from '../../hosted/reconciler.js';
import {
  type ExecutorName,
  type HostedPoolCreateInput,
  type HostedPoolStatus,
  type HostedPoolUpdate,
  HostedPoolUpdate as HostedPoolUpdateSchema,
  HostedSchedule,
  type Labels,
  parseDuration,
} from '@rbtk/protocol';
import { checkBody } from '../../client/check-body.js';
import { printJson, withClient, type Io } from './context.js';
import { UsageError } from './exit-codes.js';
import { formatKeyValues, formatLabels, formatTable, formatTime } from './format.js';
import { parseLabel, parsePositiveDuration } from './parse.js';

/** The hosted flags of `pool create` and `pool update`, as commander hands them over. */
export interface HostedFlags {
  provider?: 'process' | 'docker';
  image?: string;
  target?: number;
  min?: number;
  max?: number;
  mode?: 'hot' | 'stopped';
  onEmpty?: 'wait' | 'overflow' | 'fail';
  warmingTimeout?: string;
  readyTtl?: string;
  return?: 'ready' | 'terminate';
  executor?: ExecutorName[];
  label?: Labels;
  autoscale?: boolean;
  schedule?: HostedSchedule | null;
}

/**
 * A schedule file (RunsOn-style YAML): a list of entries, or `schedule:` holding
 * one; each `{name, match: {day, time: [from, to], timezone}, hot, stopped}`.
 * `none` clears the pool's schedule.
 */
function parseScheduleFile(file: string): HostedSchedule | null {
  if (file === 'none') return null;
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new InvalidArgumentError(`cannot read schedule ${file}: ${(err as Error).message}`);
  }
  const list = doc !== null && typeof doc === 'object' && !Array.isArray(doc) && 'schedule' in doc ? (doc as { schedule: unknown }).schedule : doc;
  const parsed = HostedSchedule.safeParse(list);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InvalidArgumentError(`schedule ${file}: ${issue.path.join('.') || 'entries'}: ${issue.message}`);
  }
  return parsed.data;
}

function parseCount(value: string): number {
  if (!/^\d+$/.test(value.trim())) throw new InvalidArgumentError('expected a whole number (0 or more)');
  return Number(value);
}

function parseNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number, 0 or more');
  return n;
}

const collect = (value: string, previous: ExecutorName[] = []): ExecutorName[] => {
  if (value !== 'shell' && value !== 'docker') throw new InvalidArgumentError('shell or docker');
  return [...previous, value];
};

/** Adds the hosted spec flags to `pool create` / `pool update`. */
export function addHostedOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--provider <provider>', 'hosted: where members run').choices(['process', 'docker']))
    .option('--image <image>', 'hosted (docker provider): the runner image')
    .option('--target <n>', 'hosted: members kept ready', parseCount)
    .option('--min <n>', 'hosted: the least --target may be and autoscale sizes to; a matching schedule entry ignores it (default 0)', parseCount)
    .option(
      '--max <n>',
      'hosted: most members at once, claimed and overflow included; caps autoscale and schedule entries (create: default twice the target; update: kept as it is)',
      parseCount,
    )
    .addOption(new Option('--mode <mode>', 'hosted: ready members run (hot) or are stopped until claimed').choices(['hot', 'stopped']))
    .addOption(new Option('--on-empty <what>', 'hosted: a job with no ready member waits, cold-starts one, or is refused').choices(['wait', 'overflow', 'fail']))
    .option('--warming-timeout <duration>', 'hosted: recycle a member not ready after this (default 10m)', parsePositiveDuration)
    .option('--ready-ttl <duration>', 'hosted: recycle a ready member idle this long (default 10m)', parsePositiveDuration)
    .addOption(new Option('--return <what>', 'hosted: after a job, back to ready (on success) or replaced (default)').choices(['ready', 'terminate']))
    .option('--executor <name>', 'hosted: executors members offer, repeatable (default shell)', collect)
    .option('--label <key=value>', 'hosted: labels members carry, repeatable; an update replaces them all, "none" clears them', parseLabel)
    .option('--autoscale', 'hosted: size from recent claims (peak over 30 min × 1.25, within --min..--max)')
    .option('--no-autoscale', 'hosted: back to the fixed --target')
    .option('--schedule <file>', 'hosted: YAML schedule entries overriding the target while they match ("none" clears it)', parseScheduleFile);
}

/**
 * The `hosted` object of a create (undefined for a self-hosted pool). UsageError, not
 * commander's InvalidArgumentError: this runs in the action, where commander prints nothing.
 */
export function hostedCreate(o: HostedFlags, type: 'self-hosted' | 'hosted'): HostedPoolCreateInput | undefined {
  const change = hostedUpdate(o);
  if (type !== 'hosted') {
    if (Object.keys(change).length > 0) throw new UsageError('hosted flags (--provider, --target, ...) need --type hosted');
    return undefined;
  }
  if (!o.provider) throw new UsageError('a hosted pool needs --provider process|docker');
  if (o.target === undefined) throw new UsageError('a hosted pool needs --target N');
  return { ...change, provider: o.provider, target: o.target };
}

/** Only the fields given on the command line. */
export function hostedUpdate(o: HostedFlags): HostedPoolUpdate {
  const change: HostedPoolUpdate = {};
  if (o.provider !== undefined) change.provider = o.provider;
  if (o.image !== undefined) change.image = o.image;
  if (o.target !== undefined) change.target = o.target;
  if (o.min !== undefined) change.min = o.min;
  if (o.max !== undefined) change.max = o.max;
  if (o.mode !== undefined) change.mode = o.mode;
  if (o.onEmpty !== undefined) change.onEmpty = o.onEmpty;
  if (o.warmingTimeout !== undefined) change.warmingTimeout = o.warmingTimeout;
  if (o.readyTtl !== undefined) change.readyTtl = o.readyTtl;
  if (o.return !== undefined) change.return = o.return;
  if (o.executor !== undefined) change.executors = o.executor as [ExecutorName, ...ExecutorName[]];
  if (o.label !== undefined) change.labels = o.label;
  if (o.autoscale !== undefined) change.autoscale = o.autoscale;
  if (o.schedule !== undefined) change.schedule = o.schedule;
  return change;
}

export function formatHosted(h: HostedPoolStatus): string {
  const s = h.spec;
  const c = h.counts;
  const head = formatKeyValues([
    ['provider', `${s.provider}${s.image ? ` (${s.image})` : ''}`],
    ['target', `${h.target} now, ${h.hot} hot (spec ${s.target}, min ${s.min}, max ${s.max}${s.autoscale ? ', autoscale' : ''})`],
    ['schedule', h.schedule ?? (s.schedule ? `${s.schedule.length} entries, none matching` : 'none')],
    ['labels', formatLabels(s.labels ?? {})],
    ['mode', `${s.mode}, on empty ${s.onEmpty}, return ${s.return}`],
    ['timeouts', `warming ${s.warmingTimeout}, ready ttl ${s.readyTtl}`],
    ['members', `${c.ready} ready, ${c.stopped ?? 0} stopped, ${c.warming} warming, ${c.claimed} claimed, ${c.errored} errored`],
    ['warm hits', `${h.warmHits} hits, ${h.warmMisses} misses`],
    ['last reconcile', formatTime(h.lastReconcileAt)],
  ]);
  const actions =
    h.recentActions.length === 0
      ? ''
      : `\nrecent reconcile actions:\n${formatTable(['AT', 'ACTION', 'MEMBER', 'REASON'], h.recentActions.map((a) => [formatTime(a.at), a.action, a.memberId, a.reason]))}`;
  return head + actions;
}

/** `rbtk pool update|reconcile|size`. */
export function registerHostedPoolCommands(pool: Command, io: Io): void {
  addHostedOptions(pool.command('update').description("change a hosted pool's spec (a reconcile pass follows at once)").argument('<name>', 'pool name')).action(
    (name: string, o: HostedFlags, cmd: Command) => {
      // Checked before the token is looked up, so a usage error exits 2 whatever the token.
      const change = hostedUpdate(o);
      if (Object.keys(change).length === 0) throw new UsageError('nothing to change: give at least one hosted flag');
      checkBody(HostedPoolUpdateSchema, change, 'hosted pool update');
      return withClient(cmd, io, async (client, opts) => {
        const after = await client.updateHostedPool(name, change);
        if (opts.json) printJson(io, after);
        else io.stdout(formatHosted(after));
      });
    },
  );

  pool
    .command('reconcile')
    .description('run a reconcile pass of a hosted pool now')
    .argument('<name>', 'pool name')
    .action((name: string, _o: unknown, cmd: Command) =>
      withClient(cmd, io, async (client, opts) => {
        const after = await client.reconcilePool(name);
        if (opts.json) printJson(io, after);
        else io.stdout(formatHosted(after));
      }),
    );

  pool
    .command('size')
    .description('the smallest hosted target for a claim rate: ceil(C × (W + R) / 60 s)')
    .requiredOption('--claims-per-min <c>', 'claims per minute at the peak', parseNumber)
    .requiredOption('--warmup <duration>', 'how long a member takes to become ready (W)', parsePositiveDuration)
    .option('--reconcile-interval <duration>', 'the coordinator\'s reconcile interval (R)', parsePositiveDuration, '30s')
    .action((o: { claimsPerMin: number; warmup: string; reconcileInterval: string }, cmd: Command) => {
      const interval = o.reconcileInterval ? parseDuration(o.reconcileInterval) : DEFAULT_RECONCILE_INTERVAL_MS;
      const target = minimumTarget(o.claimsPerMin, parseDuration(o.warmup), interval);
      const json = (cmd.optsWithGlobals() as { json?: boolean }).json;
      if (json) printJson(io, { target, claimsPerMinute: o.claimsPerMin, warmup: o.warmup, reconcileInterval: o.reconcileInterval });
      else io.stdout(`${target}\n`);
    });
}
