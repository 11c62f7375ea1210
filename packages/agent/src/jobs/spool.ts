import { appendFile, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ExecutorName, LogStream, Outcome } from '@rbtk/protocol/runner';
import writeFileAtomic from 'write-file-atomic';
import { safeName } from '../executors/executor.js';
import { fileLines } from './file-lines.js';
import type { DecodedChunk } from './log-decoder.js';

/** Who the attempt is; written once when it is accepted. */
export interface SpoolMeta {
  jobId: string;
  attempt: number;
  executor: ExecutorName;
  acceptedAt: string;
  /** A shell job's process group, so a restarted runner can end what is left of it. */
  pgid?: number;
}

export interface SpoolRecord {
  offset: number;
  stream: LogStream;
  data: string;
  bytes: number;
}

export interface SpoolResult {
  outcome: Outcome;
  exitCode: number | null;
  message?: string;
  logBytes: number;
  finishedAt: string;
}

/**
 * `<state dir>/spool/`: one directory per attempt, kept until the coordinator
 * has acknowledged its result. Disk writes of one attempt go through one
 * promise chain, so they land in the order they were asked for.
 */
export interface SpoolOptions {
  /**
   * Rewrite an attempt's log file once this many more bytes are acknowledged:
   * trimming on every ack would rewrite (and fsync) the file per frame.
   */
  trimEveryBytes?: number;
  /**
   * Unacknowledged log an attempt keeps in memory; past it, records are on disk only and read
   * back as acknowledgements free room: a chatty job while the coordinator is down must not
   * grow the heap for hours.
   */
  memoryBytes?: number;
}

const DEFAULT_TRIM_EVERY_BYTES = 256 * 1024;
const DEFAULT_MEMORY_BYTES = 8 * 1024 * 1024;

/** An attempt directory being removed (renamed first, so a kill midway never leaves a partial attempt). */
const REMOVING = '.removing';

export class Spool {
  private readonly trimEveryBytes: number;
  private readonly memoryBytes: number;

  constructor(
    readonly dir: string,
    options: SpoolOptions = {},
  ) {
    this.trimEveryBytes = options.trimEveryBytes ?? DEFAULT_TRIM_EVERY_BYTES;
    this.memoryBytes = options.memoryBytes ?? DEFAULT_MEMORY_BYTES;
  }

  async create(meta: SpoolMeta): Promise<SpooledAttempt> {
    const dir = join(this.dir, `${safeName(meta.jobId)}-${meta.attempt}`);
    await mkdir(dir, { recursive: true, mode: 0o750 });
    await writeFileAtomic(join(dir, 'meta.json'), JSON.stringify(meta), { fsync: true });
    return new SpooledAttempt(dir, meta, this.trimEveryBytes, this.memoryBytes);
  }

  /** Every attempt on disk, as a restarted runner finds them. Directories without meta.json were never accepted. */
  async load(): Promise<SpooledAttempt[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const found: SpooledAttempt[] = [];
    for (const name of names.sort()) {
      const dir = join(this.dir, name);
      if (name.endsWith(REMOVING)) {
        await rm(dir, { recursive: true, force: true });
        continue;
      }
      const meta = await readJson<SpoolMeta>(join(dir, 'meta.json'));
      if (!meta || typeof meta.jobId !== 'string' || !Number.isInteger(meta.attempt)) {
        await rm(dir, { recursive: true, force: true });
        continue;
      }
      const attempt = new SpooledAttempt(dir, meta, this.trimEveryBytes, this.memoryBytes);
      attempt.restore(await readLog(join(dir, 'log.jsonl'), this.memoryBytes), await readJson<SpoolResult>(join(dir, 'result.json')));
      found.push(attempt);
    }
    return found;
  }
}

/**
 * One attempt's log and result. Memory is updated at once (so order is the
 * order of calls); `writtenBytes` says how much of the log has been written
 * to disk, and only that much is ever sent. A write that fails (a full disk)
 * counts as written: its records are sent from memory, where they stay until
 * acknowledged, and onWriteError says so. Only a restart before the
 * acknowledgement loses them.
 */
export class SpooledAttempt {
  /**
   * Log records not yet acknowledged, in offset order, up to `spilledFrom`: the records from
   * there on are on disk only (those whose write failed are kept in `unwritten`).
   */
  records: SpoolRecord[] = [];
  /** Where the records kept on disk only begin; undefined while memory holds every unacknowledged one. */
  spilledFrom: number | undefined;
  /**
   * Where in log.jsonl the line of the record at `spilledFrom` starts, as far as the last read back
   * found (0: not known, read from the top). Each read back starts there: reading from the top every
   * time read a long log's file over and over, quadratic in its length. The file is only appended to
   * while records are spilled (no trim rewrites it), so a position found stays right. It is 0
   * whenever `spilledFrom` is undefined (a read back that ends the spill resets it), so a new spill,
   * after a trim may have rewritten the file, starts from the top.
   */
  private spilledAt = 0;
  /** Spilled records whose disk write failed: memory is the only place they are. */
  private readonly unwritten = new Map<number, SpoolRecord>();
  /** Bytes in `records`; the bound applies to them (`unwritten` cannot be let go). */
  private heldBytes = 0;
  private unwrittenBytes = 0;
  private refillQueued = false;
  /** Bytes of log written so far (acknowledged or not). */
  logBytes = 0;
  /** Every byte below this is stored by the coordinator. */
  acked = 0;
  /** Bytes of log whose write to disk is done: on disk, or sent from memory after a failed write. */
  writtenBytes = 0;
  result: SpoolResult | undefined;
  /** Called when more of the log or the result was written. */
  onWritten: (() => void) | undefined;
  /** Told when a log write fails, once until one succeeds again. */
  onWriteError: ((err: Error) => void) | undefined;
  private failing = false;
  private chain: Promise<void> = Promise.resolve();
  private trimQueued = false;
  /** Where the log file on disk starts (its base), as of the last trim. */
  private trimmedTo = 0;
  private removed = false;

  constructor(
    readonly dir: string,
    public meta: SpoolMeta,
    private readonly trimEveryBytes = DEFAULT_TRIM_EVERY_BYTES,
    private readonly memoryLimit = DEFAULT_MEMORY_BYTES,
  ) {}

  /** Bytes of log data held in memory (tests: at most the bound, plus one record). */
  get memoryBytes(): number {
    return this.heldBytes + this.unwrittenBytes;
  }

  get key(): string {
    return `${this.meta.jobId}#${this.meta.attempt}`;
  }

  append(chunks: DecodedChunk[]): void {
    if (chunks.length === 0 || this.result) return;
    const added = chunks.map((c) => {
      const bytes = Buffer.byteLength(c.data);
      const record = { offset: this.logBytes, stream: c.stream, data: c.data, bytes };
      this.logBytes += bytes;
      return record;
    });
    // Past the bound, and after the first record spilled (order), records wait on disk.
    const spilled: SpoolRecord[] = [];
    for (const r of added) {
      if (this.spilledFrom === undefined && fitsInMemory(this.records.length, this.heldBytes, r.bytes, this.memoryLimit)) {
        this.records.push(r);
        this.heldBytes += r.bytes;
      } else {
        this.spilledFrom ??= r.offset;
        spilled.push(r);
      }
    }
    const end = this.logBytes;
    this.enqueue(async () => {
      try {
        await appendFile(join(this.dir, 'log.jsonl'), added.map(line).join(''));
        this.failing = false;
      } catch (err) {
        if (!this.failing) this.onWriteError?.(err as Error);
        this.failing = true;
        // Not on disk: memory is the only copy, whatever the bound.
        for (const r of spilled) {
          this.unwritten.set(r.offset, r);
          this.unwrittenBytes += r.bytes;
        }
      } finally {
        // Not on disk? Still send it: the next trim rewrites the file from memory, which heals the hole.
        this.writtenBytes = end;
        this.onWritten?.();
      }
    });
  }

  /** The coordinator stored everything below `offset`: forget those records, on disk too. */
  ack(offset: number): void {
    if (offset <= this.acked) return;
    this.acked = Math.min(offset, this.logBytes);
    // A record the ack ends inside stays whole: splitting it could cut a character.
    // Acks come in offset order: only records at the front are dropped, and their bytes leave the count.
    let dropped = 0;
    while (dropped < this.records.length && this.records[dropped]!.offset + this.records[dropped]!.bytes <= this.acked) {
      this.heldBytes -= this.records[dropped]!.bytes;
      dropped++;
    }
    if (dropped > 0) this.records = this.records.slice(dropped);
    if (this.spilledFrom !== undefined) {
      this.queueRefill();
      // A trim rewrites the file from memory: not while part of the log is on disk only.
      return;
    }
    if (this.trimQueued || this.acked - this.trimmedTo < this.trimEveryBytes) return;
    this.trimQueued = true;
    this.enqueue(async () => {
      this.trimQueued = false;
      // Only what is already written: later records are still queued as appends.
      const keep = this.records.filter((r) => r.offset < this.writtenBytes);
      // The base is where the kept records start, so a reload finds them contiguous.
      const base = keep[0]?.offset ?? Math.min(this.acked, this.writtenBytes);
      this.trimmedTo = base;
      await writeFileAtomic(join(this.dir, 'log.jsonl'), `${JSON.stringify({ base })}\n${keep.map(line).join('')}`);
    });
  }

  /**
   * Once half the bound is free, reads the spilled records back from the file (behind the
   * appends queued before, so they are there), and those whose write failed from memory.
   */
  private queueRefill(): void {
    if (this.refillQueued || this.spilledFrom === undefined || this.heldBytes > this.memoryLimit / 2) return;
    this.refillQueued = true;
    void this.enqueue(async () => {
      this.refillQueued = false;
      if (this.spilledFrom === undefined) return;
      let next = this.spilledFrom;
      const take = (r: SpoolRecord): boolean => {
        if (r.offset !== next || !fitsInMemory(this.records.length, this.heldBytes, r.bytes, this.memoryLimit)) return false;
        if (this.unwritten.delete(r.offset)) this.unwrittenBytes -= r.bytes;
        this.records.push(r);
        this.heldBytes += r.bytes;
        next = r.offset + r.bytes;
        return true;
      };
      const fromMemory = () => {
        while (this.unwritten.has(next) && take(this.unwritten.get(next)!));
      };
      /** Takes records from the file's line at byte `at` on; `found`: it met the one at `next`. */
      const readBack = async (at: number): Promise<{ found: boolean; stoppedAt: number }> => {
        let found = false;
        let stoppedAt = at;
        try {
          for await (const line of fileLines(join(this.dir, 'log.jsonl'), at)) {
            stoppedAt = line.at;
            const r = parseLine(line.text);
            if (!r || 'base' in r || r.offset < next) continue;
            fromMemory();
            if (r.offset !== next) break;
            found = true;
            if (!take(r)) break;
            stoppedAt = line.end;
          }
        } catch {
          // An unreadable file: what memory holds of it is all there is.
        }
        return { found, stoppedAt };
      };
      // From where the last read back stopped; from the top if that finds nothing there (the file is
      // not as this attempt left it). Records are matched by offset, so a wrong position can only
      // skip records, never deliver a wrong one.
      let read = await readBack(this.spilledAt);
      if (!read.found && this.spilledAt > 0) read = await readBack(0);
      fromMemory();
      this.spilledFrom = next === this.logBytes ? undefined : next;
      this.spilledAt = this.spilledFrom === undefined ? 0 : read.stoppedAt;
      this.onWritten?.();
      if (this.spilledFrom !== undefined && this.heldBytes <= this.memoryLimit / 2) this.queueRefill();
    });
  }

  updateMeta(patch: Partial<SpoolMeta>): void {
    this.meta = { ...this.meta, ...patch };
    const meta = this.meta;
    this.enqueue(() => writeFileAtomic(join(this.dir, 'meta.json'), JSON.stringify(meta), { fsync: true }));
  }

  /** Writes the result after every log byte before it; resolves once it is durable. */
  finish(result: Omit<SpoolResult, 'logBytes' | 'finishedAt'>): Promise<SpoolResult> {
    const full: SpoolResult = { ...result, logBytes: this.logBytes, finishedAt: new Date().toISOString() };
    const step = this.enqueue(async () => {
      try {
        await writeFileAtomic(join(this.dir, 'result.json'), JSON.stringify(full), { fsync: true });
      } finally {
        // Not on disk (disk full)? Still send it: losing it at a restart beats never reporting it.
        this.result = full;
        this.onWritten?.();
      }
    });
    return step.then(() => full);
  }

  /**
   * The result is acknowledged: nothing of this attempt is needed any more.
   * Renamed first: a kill during the removal must not leave a result without
   * its log (held for ever) or a log without its result (reported again as
   * killed, and its process group signalled, long after it ended).
   */
  remove(): Promise<void> {
    this.removed = true;
    return this.enqueue(async () => {
      const doomed = `${this.dir}${REMOVING}`;
      try {
        await rename(this.dir, doomed);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
        throw err;
      }
      await rm(doomed, { recursive: true, force: true });
    }, true);
  }

  /** Resolves when every write asked for so far is done. */
  idle(): Promise<void> {
    return this.chain;
  }

  restore(log: SpoolLog, result: SpoolResult | undefined): void {
    this.records = log.records;
    this.spilledFrom = log.spilled?.from;
    this.spilledAt = log.spilled?.at ?? 0;
    this.heldBytes = this.records.reduce((n, r) => n + r.bytes, 0);
    this.acked = log.base;
    this.trimmedTo = log.base;
    this.logBytes = log.end;
    this.writtenBytes = this.logBytes;
    this.result = result;
  }

  private enqueue(step: () => Promise<unknown>, evenIfRemoved = false): Promise<void> {
    const next = this.chain.then(async () => {
      if (this.removed && !evenIfRemoved) return;
      await step();
    });
    // One failed write (disk full) must not stop the ones after it; the caller of finish() sees it.
    this.chain = next.catch(() => undefined);
    return next;
  }
}

/** The memory bound: a record joins those held while they stay under it; the first one always does. */
const fitsInMemory = (heldRecords: number, heldBytes: number, bytes: number, limit: number) => heldRecords === 0 || heldBytes + bytes <= limit;

const line = (r: SpoolRecord) => `${JSON.stringify({ o: r.offset, s: r.stream, d: r.data })}\n`;

/** One line of log.jsonl: a record, the base line (written by a trim), or undefined for a torn one. */
function parseLine(raw: string): SpoolRecord | { base: number } | undefined {
  let entry: { base?: number; o?: number; s?: LogStream; d?: string };
  try {
    entry = JSON.parse(raw) as typeof entry;
  } catch {
    return undefined;
  }
  if (typeof entry.base === 'number') return { base: entry.base };
  if (typeof entry.o !== 'number' || typeof entry.d !== 'string') return undefined;
  return { offset: entry.o, stream: entry.s === 'stderr' ? 'stderr' : 'stdout', data: entry.d, bytes: Buffer.byteLength(entry.d) };
}

/** An attempt's log.jsonl as a restart finds it. */
interface SpoolLog {
  /** Where the file's records begin (everything before was acknowledged and trimmed). */
  base: number;
  /** The first records, as many as the memory bound holds (the first one always). */
  records: SpoolRecord[];
  /** The record after them and where its line starts in the file, if the file holds more. */
  spilled?: { from: number; at: number };
  /** Where the records end: the log's length. */
  end: number;
}

/**
 * Reads log.jsonl a line at a time, holding records only up to `memoryBytes`
 * (a long log spilled while the coordinator was away must not fill the heap,
 * or exceed the longest string V8 makes, at a restart), and counting the rest.
 * A torn line (killed mid-append), duplicates and anything after a hole are skipped.
 */
async function readLog(path: string, memoryBytes: number): Promise<SpoolLog> {
  const log: SpoolLog = { base: 0, records: [], end: 0 };
  let held = 0;
  try {
    for await (const line of fileLines(path)) {
      const r = parseLine(line.text);
      if (!r) continue;
      if ('base' in r) {
        log.base = log.end = r.base;
        continue;
      }
      if (r.offset !== log.end) continue;
      if (!log.spilled && fitsInMemory(log.records.length, held, r.bytes, memoryBytes)) {
        log.records.push(r);
        held += r.bytes;
      } else {
        log.spilled ??= { from: r.offset, at: line.at };
      }
      log.end = r.offset + r.bytes;
    }
  } catch {
    // No file (nothing logged yet) or an unreadable one: what was read is what there is.
  }
  return log;
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}
