import type { IncomingMessage } from 'node:http';
import { ErrorCode, MAX_HTTP_BODY_BYTES, RbtkError } from '@rbtk/protocol';

/**
 * Past this, the connection is cut instead of read to the end. Up to it, an
 * oversized body is drained so the client reliably reads our 413 instead of a
 * connection reset.
 */
const DRAIN_LIMIT_BYTES = 16 * MAX_HTTP_BODY_BYTES;

/**
 * The client went away before its body was read (closed the connection, a
 * reset, a timeout): nobody is left to answer, and it is not our failure.
 */
export class ClientGoneError extends Error {
  override readonly name = 'ClientGoneError';
}

/** Reads the whole body as UTF-8; 413 body_too_large past `limit`; ClientGoneError when the client leaves first. */
export async function readBody(req: IncomingMessage, limit = MAX_HTTP_BODY_BYTES): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > DRAIN_LIMIT_BYTES) {
        req.destroy();
        break;
      }
      if (total <= limit) chunks.push(chunk);
    }
  } catch (err) {
    // node fails the stream with `aborted` (ECONNRESET) when the peer closes mid-body.
    if (!req.complete) throw new ClientGoneError(`client went away mid-body: ${(err as Error).message}`);
    throw err;
  }
  if (total > limit) {
    throw new RbtkError(ErrorCode.BodyTooLarge, `request body is larger than ${limit} bytes`);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The part of a zod schema this file uses (zod itself is protocol's dependency, not ours). */
export interface Issue {
  path: PropertyKey[];
  message: string;
}
export interface Schema<T> {
  safeParse(value: unknown): { success: true; data: T } | { success: false; error: { issues: Issue[] } };
}

/** "name: too long; tags.env: expected string" — every failing field, by path. */
export function formatIssues(error: { issues: Issue[] }): string {
  return error.issues.map((i) => (i.path.length > 0 ? `${i.path.map(String).join('.')}: ${i.message}` : i.message)).join('; ');
}

/** Reads and validates a JSON body: 400 invalid_json, 400 bad_request naming the field, 413. */
export async function readJson<T>(req: IncomingMessage, schema: Schema<T>): Promise<T> {
  const text = await readBody(req);
  let value: unknown;
  try {
    // An empty body is an empty object, so bodies whose fields all have defaults may be left out.
    value = text.trim() === '' ? {} : JSON.parse(text);
  } catch (err) {
    throw new RbtkError(ErrorCode.InvalidJson, `request body is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new RbtkError(ErrorCode.BadRequest, `invalid request body: ${formatIssues(parsed.error)}`);
  return parsed.data;
}
