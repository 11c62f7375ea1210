// Everything: the runner's share (also its own entry, ./runner.js) plus the coordinator's REST schemas and the submitter client.
export * from './runner.js';
export * from './schemas/project.js';
export * from './schemas/pool.js';
export * from './schemas/hosted-pool.js';
export * from './schemas/token.js';
export * from './schemas/audit.js';
export * from './schemas/stats.js';
export * from './client/index.js';
