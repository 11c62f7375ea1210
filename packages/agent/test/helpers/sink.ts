import type { LogStream } from '@rbtk/protocol';
import type { ExecutionSink } from '../../src/executors/executor.js';

/** An ExecutionSink that keeps everything, in arrival order. */
export class MemorySink implements ExecutionSink {
  readonly chunks: { stream: LogStream; data: Buffer }[] = [];
  startedCount = 0;
  pgid: number | undefined;

  started(detail?: { pgid?: number }): void {
    this.startedCount++;
    this.pgid = detail?.pgid;
  }

  output(stream: LogStream, data: Buffer): void {
    this.chunks.push({ stream, data });
  }

  text(stream?: LogStream): string {
    return Buffer.concat(this.chunks.filter((c) => !stream || c.stream === stream).map((c) => c.data)).toString('utf8');
  }

  async waitForText(needle: string, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.text().includes(needle)) {
      if (Date.now() > deadline) throw new Error(`no "${needle}" in the output: ${JSON.stringify(this.text())}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}
