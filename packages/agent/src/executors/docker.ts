import { Writable } from 'node:stream';
import Docker from 'dockerode';
import type { DockerExecutorSpec, ExecutorSpec, LogStream } from '@rbtk/protocol/runner';
import { LABELS } from './container-labels.js';
import { dockerMessage } from './docker-error.js';
import { ensureImage } from './docker-image.js';
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
}

export { LABELS } from './container-labels.js';

/** After the container exits, how long its output stream may take to end. */
const STREAM_DRAIN_MS = 5_000;

/** One container per attempt, named rbtk-<jobId>-<attempt>, removed whatever happens. */
export class DockerExecutor implements Executor {
  readonly docker: Docker;

  constructor(private readonly options: DockerExecutorOptions = {}) {
    this.docker = options.docker ?? new Docker();
  }

  start(attempt: AttemptRef, spec: ExecutorSpec, sink: ExecutionSink, signal?: AbortSignal, resources: AttemptResources = {}): Execution {
    if (spec.type !== 'docker') throw new TypeError(`the docker executor cannot run a ${spec.type} job`);
    return new DockerExecution(this.docker, this.options, attempt, resources, spec, sink, signal);
  }
}

class DockerExecution implements Execution {
  private stopped: StopReason | undefined;
  private container: Docker.Container | undefined;
  /** Aborted by stop(): a pull in progress ends at once. */
  private readonly pulling = new AbortController();
  private readonly done: Promise<ExecutionResult>;

  constructor(
    private readonly docker: Docker,
    private readonly options: DockerExecutorOptions,
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

  stop(reason: StopReason): void {
    if (this.stopped) return;
    this.stopped = reason;
    // Before the container runs, run() sees `stopped` at its next step and stops there; a pull is cut short.
    this.pulling.abort();
    if (this.container) this.stopContainer(this.container);
  }

  private async run(spec: DockerExecutorSpec, sink: ExecutionSink): Promise<ExecutionResult> {
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
      // A container that cannot be removed now is found by its labels at the next start.
      await container.remove({ force: true }).catch(() => undefined);
    }
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

    let exitCode: number | null;
    try {
      const waited = (await container.wait()) as { StatusCode?: number };
      exitCode = typeof waited.StatusCode === 'number' ? waited.StatusCode : null;
    } catch (err) {
      const stopped = this.stopped as StopReason | undefined; // set by stop() meanwhile
      return { outcome: stopped?.outcome ?? 'failed', exitCode: null, message: `docker: ${dockerMessage(err)}` };
    }
    await Promise.race([ended, new Promise((r) => setTimeout(r, STREAM_DRAIN_MS).unref())]);
    return resultOf(exitCode, this.stopped);
  }

  private stopContainer(container: Docker.Container): void {
    // docker stop: the image's stop signal (SIGTERM), SIGKILL after t seconds. 304: already stopped.
    container.stop({ t: this.options.stopTimeoutS ?? 10 }).catch(() => undefined);
  }

  private createOptions(spec: DockerExecutorSpec): Docker.ContainerCreateOptions {
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
      HostConfig: { NetworkMode: this.resources.network ?? this.options.network ?? 'none', DeviceRequests: deviceRequests(this.resources.gpuIds) },
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
