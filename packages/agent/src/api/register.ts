import { ROUTES, RegisterRequest, RegisterResponse, type RegisterRequestInput } from '@rbtk/protocol/runner';
import { request } from 'undici';
import { coordinatorError } from './error-body.js';
import { coordinatorUrl } from './url.js';

export interface RegisterCallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * POST /v1/runners/register with the registration token as Bearer. Returns
 * the validated RegisterResponse; a refusal throws RbtkError with the
 * coordinator's code and message (token_expired, airgapped_required, ...).
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
    throw new Error(`cannot reach the coordinator at ${url.origin}: ${describe(err)}`);
  }
  const text = await res.body.text();
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

/** undici wraps socket errors; the cause's code (ECONNREFUSED) is what a person needs. */
function describe(err: unknown): string {
  const e = err as { message?: string; code?: string; cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.code ?? e.cause?.message ?? e.message ?? String(err);
}
