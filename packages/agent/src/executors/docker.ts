import { Writable } from 'node:stream';
import Docker from 'dockerode';
import { parseMemory, type DockerExecutorSpec, type ExecutorSpec, type LogStream } from '@rbtk/protocol/runner';
import type { Logger } from '../log.js';
import { LABELS } from './container-labels.js';
import { dockerMessage } from './docker-error.js';
import { ensureImage } from './docker-image.js';
import { InternalNetworkCheck, type NetworkRefusal } from './docker-network.js';
import { inspectEnd, oomMessage, possibleOomMessage } from './docker-oom.js';
import { removeOnce, retryRemoval, type RemovalOptions } from './docker-removal.js';
import { waitFailedMessage, waitForExit } from './docker-wait.js';
import {
  containerName,
  failedBeforeStart,
  resultOf,
  stopOnAbort,
  type AttemptRef,
  type AttemptResources,
  type Execution,
  type ExecutionResult,
  type ExecutionSink,
  type Executor,
  type StopReason,
} from './executor.js';

export interface DockerExecutorOptions {
  /** Default: DOCKER_HOST, else /var/run/docker.sock (docker-modem's own rules). */
  docker?: Docker;
  /** HostConfig.NetworkMode of job containers: runner.yaml docker_network, default "none". */
  network?: string;
  /** `docker stop -t`: seconds between SIGTERM and SIGKILL. Default 10. */
  stopTimeoutS?: number;
  /** runner.yaml airgapped: never pull, except from `registry`. */
  airgapped?: boolean;
  /** runner.yaml registry: the on-prem registry an air-gapped runner may pull from. */
  registry?: string;
  /** Where a container that cannot be removed at once (dockerd down) is reported. */
  logger?: Logger;
  /** How long and how often such a removal is tried again. */
  removal?: Omit<RemovalOptions, 'logger'>;
}

export { LABELS } from './container-labels.js';

/** After the container exits, how long its output stream may take to end. */
const STREAM_DRAIN_MS = 5_000;

/** One container per attempt, named rbtk-<jobId>-<attempt>, removed whatever happens. */
export class DockerExecutor implements Executor {
  readonly docker: Docker;
  /** An air-gapped runner's: job containers join `none` or an internal network only. */
  private readonly networks: InternalNetworkCheck | undefined;

  constructor(private readonly options: DockerExecutorOptions = {}) {
    this.docker = options.docker ?? new Docker();
    this.networks = options.airgapped ? new InternalNetworkCheck(this.docker) : undefined;
  }

  /** An air-gapped runner refuses a job whose container network could reach beyond the host, before accepting it. */
  async refusal(_spec: ExecutorSpec, resources: AttemptResources = {}): Promise<NetworkRefusal | undefined> {
    return this.networks?.refusal(networkOf(resources, this.options));
  }

  start(attempt: AttemptRef, spec: ExecutorSpec, sink: ExecutionSink, signal?: AbortSignal, resources: AttemptResources = {}): Execution {
    if (spec.type !== 'docker') throw new TypeError(`the docker executor cannot run a ${spec.type} job`);
    return new DockerExecution(this.docker, this.options, this.networks, attempt, resources, spec, sink, signal);
  }
}

/** The pool's network (welcome), else runner.yaml's docker_network, else none. */
function networkOf(resources: AttemptResources, options: DockerExecutorOptions): string {
  return resources.network ?? options.network ?? 'none';
}

class DockerExecution implements Execution {
  private stopped: StopReason | undefined;
  private container: Docker.Container | undefined;
  /** Aborted by stop(): a pull in progress ends at once. */
  private readonly pulling = new AbortController();
  private readonly done: Promise<ExecutionResult>;
  /** Set when the first removal failed: retries in progress, true once the container is gone. */
  private removal: Promise<boolean> | undefined;
  /** Aborted through cleanup()'s signal: the retries stop and leave the container to the next start. */
  private readonly giveUp = new AbortController();

  constructor(
    private readonly docker: Docker,
    private readonly options: DockerExecutorOptions,
    private readonly networks: InternalNetworkCheck | undefined,
    private readonly ref: AttemptRef,
    private readonly resources: AttemptResources,
    spec: DockerExecutorSpec,
    sink: ExecutionSink,
    signal?: AbortSignal,
  ) {
    this.done = this.run(spec, sink);
    stopOnAbort(this, signal);
  }

  wait(): Promise<ExecutionResult> {
    return this.done;
  }

  async cleanup(signal: AbortSignal): Promise<boolean> {
    await this.done;
    if (!this.removal) return true;
    const onAbort = () => this.giveUp.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    try {
      return await this.removal;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  stop(reason: StopReason): void {
    if (this.stopped) return;
    this.stopped = reason;
    // Before the container runs, run() sees `stopped` at its next step and stops there; a pull is cut short.
    this.pulling.abort();
    if (this.container) this.stopContainer(this.container);
  }

  /** The pool's network (welcome), else runner.yaml's docker_network, else none. */
  private get network(): string {
    return networkOf(this.resources, this.options);
  }

  private async run(spec: DockerExecutorSpec, sink: ExecutionSink): Promise<ExecutionResult> {
    // Before the image: an air-gapped job that could reach out never starts, nor pulls from the registry.
    // The manager asked refusal() before accepting; this catches a network changed since (kept a minute).
    const unsafe = await this.networks?.refusal(this.network);
    if (this.stopped) return resultOf(null, this.stopped);
    if (unsafe) return failedBeforeStart(unsafe.reason);
    let refused: string | undefined;
    try {
      refused = await ensureImage(this.docker, spec.image, spec.pull, {
        airgapped: this.options.airgapped ?? false,
        registry: this.options.registry,
        signal: this.pulling.signal,
      });
    } catch (err) {
      if (this.stopped) return resultOf(null, this.stopped);
      return failedBeforeStart(`docker: ${dockerMessage(err)}`);
    }
    // Stopped during the pull: the pull's failure is the stop's doing, not the image's.
    if (this.stopped) return resultOf(null, this.stopped);
    if (refused) return failedBeforeStart(refused);

    let container: Docker.Container;
    try {
      container = await this.docker.createContainer(this.createOptions(spec));
    } catch (err) {
      return failedBeforeStart(`could not create the container: ${dockerMessage(err)}`);
    }
    try {
      return await this.runContainer(container, sink);
    } finally {
      await this.remove(container);
    }
  }

  /**
   * One try before the result, so in the common case the container is gone when
   * wait() resolves. If dockerd is down, the result goes out anyway and the
   * retries go on behind it (cleanup() waits for them).
   */
  private async remove(container: Docker.Container): Promise<void> {
    const first = await removeOnce(container, this.options.removal);
    if (first.gone) return;
    const fields = { container: containerName(this.ref), jobId: this.ref.jobId, attempt: this.ref.attempt };
    this.removal = retryRemoval(container, first, fields, this.giveUp.signal, { ...this.options.removal, logger: this.options.logger });
  }

  private async runContainer(container: Docker.Container, sink: ExecutionSink): Promise<ExecutionResult> {
    let stream: NodeJS.ReadableStream;
    try {
      // Attached before start, so not one byte of output is missed.
      stream = await container.attach({ stream: true, stdout: true, stderr: true });
    } catch (err) {
      return failedBeforeStart(`could not attach to the container: ${dockerMessage(err)}`);
    }
    const ended = new Promise<void>((resolve) => {
      stream.once('end', resolve);
      stream.once('close', resolve);
      stream.once('error', () => resolve());
    });
    // demuxStream writes frames in the order the Engine sent them, stdout and stderr interleaved.
    this.docker.modem.demuxStream(stream, toSink('stdout', sink), toSink('stderr', sink));

    if (this.stopped) return resultOf(null, this.stopped);
    try {
      await container.start();
    } catch (err) {
      return failedBeforeStart(`could not start the container: ${dockerMessage(err)}`);
    }
    this.container = container;
    sink.started();
    if (this.stopped) this.stopContainer(container);

    const waited = await waitForExit(container, ended);
    if ('error' in waited) {
      const stopped = this.stopped as StopReason | undefined; // set by stop() meanwhile
      return { outcome: stopped?.outcome ?? 'failed', exitCode: null, message: waitFailedMessage(waited) };
    }
    const { exitCode } = waited;
    await Promise.race([ended, new Promise((r) => setTimeout(r, STREAM_DRAIN_MS).unref())]);
    if (!this.stopped && exitCode !== 0) {
      // The OOM killer's SIGKILL reads as a plain exit 137: only the Engine can tell.
      const end = await inspectEnd(container);
      if (end?.oomKilled) return { outcome: 'failed', exitCode, message: oomMessage(end.memoryBytes), oomKilled: true };
      if (end && exitCode === 137 && end.memoryBytes > 0) return { outcome: 'failed', exitCode, message: possibleOomMessage(end.memoryBytes) };
    }
    return resultOf(exitCode, this.stopped);
  }

  private stopContainer(container: Docker.Container): void {
    // docker stop: the image's stop signal (SIGTERM), SIGKILL after t seconds. 304: already stopped.
    container.stop({ t: this.options.stopTimeoutS ?? 10 }).catch(() => undefined);
  }

  private createOptions(spec: DockerExecutorSpec): Docker.ContainerCreateOptions {
    // MemorySwap equal to Memory: no swap on top (Docker's default adds as much again), so the limit holds.
    const memory = spec.memory === undefined ? undefined : parseMemory(spec.memory);
    return {
      name: containerName(this.ref),
      Image: spec.image,
      Cmd: spec.command,
      Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
      WorkingDir: spec.workdir,
      Labels: {
        [LABELS.runner]: this.ref.runnerId,
        [LABELS.job]: this.ref.jobId,
        [LABELS.attempt]: String(this.ref.attempt),
      },
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      OpenStdin: false,
      HostConfig: {
        NetworkMode: this.network,
        DeviceRequests: deviceRequests(this.resources.gpuIds),
        ...(memory !== undefined ? { Memory: memory, MemorySwap: memory } : {}),
      },
    };
  }
}

/**
 * The attempt's GPUs as a device request for the Engine's nvidia driver, by
 * uuid, so each container sees exactly its own. Never the legacy `nvidia`
 * runtime: the toolkit's hook serves device requests without it.
 */
function deviceRequests(gpuIds: readonly string[] | undefined): Docker.DeviceRequest[] | undefined {
  if (!gpuIds || gpuIds.length === 0) return undefined;
  return [{ Driver: 'nvidia', DeviceIDs: [...gpuIds], Capabilities: [['gpu']] }];
}

function toSink(stream: LogStream, sink: ExecutionSink): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      sink.output(stream, chunk);
      done();
    },
  });
}
