import path from 'node:path';
import type { CoordinatorContext } from '../context.js';
import { findRunnerBin } from '../dev/runner-process.js';
import { HostedPools } from './hosted-pools.js';
import { ProcessProvider } from './process-provider.js';
import type { HostedProviderImpl } from './provider.js';

/** Members' files live under DATA_DIR/hosted/<pool>/<member>/. */
export const HOSTED_DIR = 'hosted';

/**
 * Hosted pools for this coordinator: the providers this host offers, and the
 * members the store knows loaded, so that members still running from before
 * a restart are adopted when they say hello. Hooks into the job service.
 */
export async function createHostedPools(ctx: CoordinatorContext, dataDir: string, url: () => string): Promise<HostedPools> {
  const providers: Partial<Record<'process' | 'docker', HostedProviderImpl>> = {};
  let runnerBin: string | undefined;
  try {
    runnerBin = findRunnerBin();
  } catch (err) {
    ctx.log.warn({ err }, 'hosted pools: rbtk-runner not found, the process provider is off');
  }
  if (runnerBin) providers.process = new ProcessProvider({ root: path.join(dataDir, HOSTED_DIR), runnerBin });
  const hosted = new HostedPools({ ctx, providers, url, agentMark: runnerBin });
  await hosted.load();
  ctx.jobs.members = hosted;
  ctx.hosted = hosted;
  return hosted;
}
