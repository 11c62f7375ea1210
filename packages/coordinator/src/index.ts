export { startCoordinator, DATABASE_FILE } from './coordinator.js';
export type { Coordinator, CoordinatorOptions } from './options.js';
export type { HostedProviderImpl, MemberHandle, MemberLaunch, OwnedMember } from './hosted/provider.js';
export { ADMIN_TOKEN_FILE } from './bootstrap.js';
export { createLogger, LOG_LEVELS, type LogLevel, type Logger, type LoggerConfig } from './log.js';
export { parseListen, type ListenAddress } from './listen.js';
