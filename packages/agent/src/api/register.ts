import { ROUTES, RegisterRequest, RegisterResponse, type RegisterRequestInput } from '@rbtk/protocol/runner';
import { request } from 'undici';
import { ConnectionError } from '../errors.js';
import { coordinatorError } from './error-body.js';
import { coordinatorUrl } from './url.js';

export interface RegisterCallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * One POST /v1/runners/register with the registration token as Bearer.
 * Returns the validated RegisterResponse; a refusal throws RbtkError with the
 * coordinator's code, status and message (token_expired, airgapped_required,
 * ...); no answer (refused, reset, timed out, cut mid-body) throws
 * ConnectionError. registerWithRetry (register-retry.ts) sorts them.
 */
export async function register(
  baseUrl: string,
  registrationToken: string,
  body: RegisterRequestInput,
  options: RegisterCallOptions = {},
): Promise<RegisterResponse> {
  const url = coordinatorUrl(baseUrl, ROUTES.register);
  const timeout = options.timeoutMs ?? 30_000;
  let res;
  try {
    res = await request(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${registrationToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(RegisterRequest.parse(body)),
      headersTimeout: timeout,
      bodyTimeout: timeout,
      signal: options.signal,
    });
  } catch (err) {
    throw new ConnectionError(`cannot reach the coordinator at ${url.origin}: ${describe(err)}`);
  }
  let text: string;
  try {
    text = await res.body.text();
  } catch (err) {
    // The coordinator may have registered us: only a retry with the same registration id can tell.
    throw new ConnectionError(`lost the coordinator's answer from ${url.origin}: ${describe(err)}`);
  }
  if (res.statusCode < 200 || res.statusCode >= 300) throw coordinatorError(res.statusCode, text);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`coordinator at ${url.origin} answered registration with something other than JSON`);
  }
  const parsed = RegisterResponse.safeParse(json);
  if (!parsed.success) {
    throw new Error(`coordinator at ${url.origin} sent an invalid registration response: ${parsed.error.issues[0]?.message}`);
  }
  return parsed.data;
}

/**
 * undici wraps socket errors; the cause's code (ECONNREFUSED) is what a person
 * needs, and for undici's own codes (UND_ERR_SOCKET) its message too.
 */
function describe(err: unknown): string {
  const e = err as { message?: string; code?: string; cause?: { code?: string; message?: string } };
  const code = e.cause?.code ?? e.code;
  const message = e.cause?.message ?? e.message;
  if (code?.startsWith('UND_ERR') && message) return `${message} (${code})`;
  return code ?? message ?? String(err);
}
