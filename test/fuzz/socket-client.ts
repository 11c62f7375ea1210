import WebSocket from 'ws';
import type { Frame } from './arbitraries.js';

/** What came back on one fuzzing connection. */
export interface Conversation {
  /** Upgrade refused: the HTTP status and its body. */
  refused?: { status: number; body: string };
  messages: Record<string, unknown>[];
  /** Frames from the server that were not JSON objects (a bug if any). */
  garbled: string[];
  closeCode?: number;
}

/**
 * A raw WebSocket client for the fuzzers: sends any frame (text or binary,
 * any size) and records every message and the close code.
 */
export class FuzzSocket {
  readonly conv: Conversation = { messages: [], garbled: [] };
  private waiters: (() => void)[] = [];
  readonly closed: Promise<void>;

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const text = data.toString();
      try {
        const value = JSON.parse(text) as unknown;
        if (typeof value === 'object' && value !== null && !Array.isArray(value)) this.conv.messages.push(value as Record<string, unknown>);
        else this.conv.garbled.push(text);
      } catch {
        this.conv.garbled.push(text);
      }
      this.wake();
    });
    this.closed = new Promise((resolve) =>
      ws.on('close', (code) => {
        this.conv.closeCode = code;
        this.wake();
        resolve();
      }),
    );
    // Errors after the upgrade end in 'close'; an EPIPE while we still send is expected when the server closed first.
    ws.on('error', () => undefined);
  }

  /** Opens the socket; resolves with the refusal instead when the upgrade is answered with an HTTP error. */
  static open(url: string, headers: Record<string, string>): Promise<FuzzSocket | { status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers, maxPayload: 64 * 1024 * 1024 });
      ws.once('open', () => resolve(new FuzzSocket(ws)));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, body });
          ws.terminate();
        });
      });
      ws.once('error', reject);
    });
  }

  send(frame: Frame): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if ('binary' in frame) this.ws.send(frame.binary, { binary: true });
    else this.ws.send(frame.text);
  }

  get isClosed(): boolean {
    return this.conv.closeCode !== undefined;
  }

  /** Waits until match() holds (checked on every message and on close), or throws after timeoutMs. */
  async until(what: string, match: (c: Conversation) => boolean, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!match(this.conv)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`fuzz socket: no ${what} in ${timeoutMs} ms; got ${JSON.stringify(this.conv).slice(0, 2_000)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): Promise<void> {
    if (!this.isClosed) this.ws.close();
    return this.closed;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
