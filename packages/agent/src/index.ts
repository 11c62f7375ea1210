export * from './config/index.js';
export {
  AlreadyRegisteredError,
  AlreadyRunningError,
  ConnectionError,
  ProtocolMismatchError,
  RevokedError,
  UsageError,
  isUnrecoverable,
} from './errors.js';
export { runAgent, type AgentOptions } from './agent.js';
export { runDaemon, type DaemonDeps, type DaemonResult } from './daemon.js';
export { DaemonState, type DaemonStatus } from './daemon-state.js';
export { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
export { openSession, Session, type CloseInfo, type SessionOptions } from './session.js';
export { runHeartbeatLoop, heartbeatDelay, type HeartbeatDeps } from './heartbeat.js';
export { TokenRotation, type TokenRotationDeps } from './token-rotation.js';
export { startControlServer, type ControlHandlers, type ControlServer } from './control/server.js';
export { askDaemon, fetchDaemonStatus, NOT_RUNNING, waitForIdle, type ControlActionAnswer, type ControlAnswer, type IdleAnswer } from './control/client.js';
export { daemonControlHandlers, HOST_DRAIN_REASON } from './control/handlers.js';
export { DrainControl, type DrainInfo, type DrainSource } from './drain.js';
export { DRAIN_FILE, HostDrainFile } from './drain-file.js';
export { lockInstance, type InstanceLock } from './instance-lock.js';
export { DaemonExit, type ExitGoal } from './daemon-exit.js';
export { installedPackageJson, PACKAGE_JSON_ENV, readInstalledVersion, runUpgradeWatchLoop, Wakeup, type UpgradeWatchDeps } from './upgrade.js';
export { register } from './api/register.js';
export { registerRunner, type RegisterRunnerOptions, type RegisterRunnerResult } from './register-runner.js';
export { readRunnerStatus, type RunnerStatusReport } from './status.js';
export { collectHostFacts } from './inventory/host.js';
export { parseNvidiaSmiXml, NvidiaSmiParseError, type NvidiaSmiReport } from './inventory/gpu-xml.js';
export { readGpus, type GpuReport, type ReadGpusOptions } from './inventory/gpus.js';
export { checkDockerGpuSupport, NO_TOOLKIT_REASON, type GpuSupport } from './inventory/gpu-docker.js';
export { collectGpuInventory, type GpuInventoryOptions } from './inventory/gpu-inventory.js';
export { GpuAllocator, type GpuClaim } from './jobs/gpu-allocator.js';
export { runDoctor, type DoctorOptions, type DoctorReport } from './doctor/doctor.js';
export type { DoctorCheck } from './doctor/doctor-check.js';
export { createLogger, type Logger, type LoggerOptions } from './log.js';
export { agentVersion } from './version.js';
export { JobManager, RESTARTED_MESSAGE, STOPPED_MESSAGE, type JobManagerDeps } from './jobs/manager.js';
export { Spool, SpooledAttempt, type SpoolMeta, type SpoolResult } from './jobs/spool.js';
export { LogDecoder, MAX_LOG_CHUNK_BYTES } from './jobs/log-decoder.js';
export type { JobStatus, AttemptState } from './jobs/held-attempt.js';
export type { Executor, Execution, ExecutionResult, ExecutionSink, StopReason, AttemptRef, AttemptResources } from './executors/executor.js';
export { DockerExecutor, LABELS as CONTAINER_LABELS, type DockerExecutorOptions } from './executors/docker.js';
export { ShellExecutor, type ShellExecutorOptions } from './executors/shell.js';
export { cleanupLeftovers, type LeftoverContainer } from './executors/docker-leftovers.js';
export { createExecutors, type ExecutorOptions } from './executors/index.js';
