import { Agent, request } from 'undici';
import { ErrorBody, ErrorCode, RbtkError } from '@rbtk/protocol';

/**
 * What apiRequest needs of a protocol schema. Structural, so this package uses the
 * protocol's zod schemas without depending on zod itself.
 */
export interface ResponseSchema<T> {
  safeParse(input: unknown):
    | { success: true; data: T }
    | { success: false; error: { issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }> } };
}

/** A schema for a bare JSON array of `item` (lists are bare arrays on the wire). */
export function arrayOf<T>(item: ResponseSchema<T>): ResponseSchema<T[]> {
  return {
    safeParse(input) {
      if (!Array.isArray(input)) return { success: false, error: { issues: [{ path: [], message: 'expected an array' }] } };
      const data: T[] = [];
      for (const [index, element] of input.entries()) {
        const r = item.safeParse(element);
        if (!r.success) {
          return { success: false, error: { issues: r.error.issues.map((i) => ({ ...i, path: [index, ...i.path] })) } };
        }
        data.push(r.data);
      }
      return { success: true, data };
    },
  };
}

/** One HTTP call of the coordinator API, as ApiClient describes it. */
export interface ApiCall {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
}

export interface Transport {
  baseUrl: URL;
  token?: string;
  timeoutMs: number;
  dispatcher: Agent;
}

/** Error codes for a non-2xx answer whose body is not an rbtk ErrorBody (a proxy, say). */
function codeForStatus(status: number): ErrorCode {
  if (status === 401) return ErrorCode.Unauthorized;
  if (status === 403) return ErrorCode.Forbidden;
  if (status === 404) return ErrorCode.NotFound;
  if (status === 409) return ErrorCode.Conflict;
  if (status === 413) return ErrorCode.BodyTooLarge;
  if (status === 502 || status === 503 || status === 504) return ErrorCode.Unavailable;
  if (status >= 500) return ErrorCode.Internal;
  return ErrorCode.BadRequest;
}

/** Builds the request URL, keeping any path prefix of the base URL (a reverse proxy's, say). */
export function apiUrl(base: URL, path: string, query: ApiCall['query'] = {}): URL {
  const url = new URL(base.href);
  url.pathname = url.pathname.replace(/\/+$/, '') + path;
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) url.searchParams.set(key, String(value));
  }
  return url;
}

/** The first useful words of a network error; undici may wrap several (one per address) in an AggregateError. */
function networkReason(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  const inner = err instanceof AggregateError ? err.errors[0] : (err as { cause?: unknown }).cause;
  const reachable = ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE',
    'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED'];
  if (typeof code === 'string' && reachable.includes(code)) {
    return err.message || (inner instanceof Error && inner.message) || code;
  }
  return inner === undefined ? undefined : networkReason(inner);
}

/** Maps a failure to send or receive into RbtkError 'unavailable', or returns undefined if it was something else. */
function unreachable(err: unknown, base: URL, timeoutMs: number): RbtkError | undefined {
  const where = `cannot reach the coordinator at ${base.origin}`;
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return new RbtkError(ErrorCode.Unavailable, `${where}: no answer within ${timeoutMs / 1000}s`, 0);
  }
  const reason = networkReason(err);
  return reason === undefined ? undefined : new RbtkError(ErrorCode.Unavailable, `${where}: ${reason}`, 0);
}

function describe(call: ApiCall): string {
  return `${call.method} ${call.path}`;
}

/** Turns a non-2xx answer into the RbtkError the coordinator meant, code and message included. */
function errorFromResponse(status: number, text: string, call: ApiCall): RbtkError {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const body = ErrorBody.safeParse(json);
  if (body.success) {
    const { code, message, details } = body.data.error;
    // Codes are open-ended on the wire: a newer coordinator may send one this CLI does not know.
    return new RbtkError(code as ErrorCode, message, status, details);
  }
  const snippet = text.trim().slice(0, 200);
  const message = `the coordinator answered ${describe(call)} with HTTP ${status}${snippet ? `: ${snippet}` : ''}`;
  return new RbtkError(codeForStatus(status), message, status);
}

/**
 * Sends one API call and returns its body validated by `schema` (undefined for 204).
 * Every failure is an RbtkError: the server's own code and status, 'unavailable' (status 0)
 * when the coordinator cannot be reached, 'internal' when its answer breaks the contract.
 */
export async function apiRequest<T>(t: Transport, call: ApiCall, schema: ResponseSchema<T>): Promise<T>;
export async function apiRequest(t: Transport, call: ApiCall, schema: null): Promise<void>;
export async function apiRequest<T>(t: Transport, call: ApiCall, schema: ResponseSchema<T> | null): Promise<T | void> {
  if (schema === null) {
    await apiExchange(t, call, null);
    return;
  }
  return (await apiExchange(t, call, schema)).data;
}

/** apiRequest that also answers the 2xx status, for endpoints where it means something (201 vs 200). */
export async function apiExchange<T>(t: Transport, call: ApiCall, schema: ResponseSchema<T>): Promise<{ status: number; data: T }>;
export async function apiExchange(t: Transport, call: ApiCall, schema: null): Promise<{ status: number; data: undefined }>;
export async function apiExchange<T>(t: Transport, call: ApiCall, schema: ResponseSchema<T> | null): Promise<{ status: number; data: T | undefined }> {
  const url = apiUrl(t.baseUrl, call.path, call.query);
  const headers: Record<string, string> = { accept: 'application/json' };
  if (t.token) headers.authorization = `Bearer ${t.token}`;
  if (call.body !== undefined) headers['content-type'] = 'application/json';
  let status: number;
  let text: string;
  try {
    const res = await request(url, {
      method: call.method,
      headers,
      body: call.body === undefined ? undefined : JSON.stringify(call.body),
      dispatcher: t.dispatcher,
      signal: AbortSignal.timeout(t.timeoutMs),
    });
    status = res.statusCode;
    text = await res.body.text();
  } catch (err) {
    throw unreachable(err, t.baseUrl, t.timeoutMs) ?? err;
  }
  if (status < 200 || status > 299) throw errorFromResponse(status, text, call);
  if (schema === null) return { status, data: undefined };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new RbtkError(ErrorCode.Internal, `the coordinator answered ${describe(call)} with a body that is not JSON`, status);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? ` at ${issue.path.map(String).join('.')}` : '';
    throw new RbtkError(ErrorCode.Internal,
      `the coordinator's answer to ${describe(call)} does not match the protocol${where}: ${issue?.message ?? 'invalid'}`, status);
  }
  return { status, data: parsed.data };
}
