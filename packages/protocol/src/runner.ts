/*
 * The runner's share of the wire contract: the runner socket's frames,
 * runner.yaml, registration, errors and tokens. rbtk-runner imports this
 * entry (@rbtk/protocol/runner) instead of the index, so an idle daemon does
 * not build the coordinator's REST schemas or load the submitter client.
 */
export * from './version.js';
export * from './agent-version.js';
export * from './constants.js';
export * from './duration.js';
export * from './memory.js';
export * from './errors.js';
export * from './tokens.js';
export * from './frame.js';
export * from './messages.js';
export * from './job-messages.js';
export * from './schemas/job.js';
export * from './schemas/common.js';
export * from './schemas/host.js';
export * from './schemas/gpu.js';
export * from './schemas/runner.js';
export * from './schemas/runner-config.js';
export * from './schemas/error.js';
