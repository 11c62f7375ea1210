import { z } from 'zod';
import { ErrorCode } from './errors.js';

export type ParseResult<T> = { ok: true; message: T } | { ok: false; code: ErrorCode; error: string };

/**
 * Parses one frame against a union schema and says exactly what is wrong:
 * not JSON, not an object with a known `type`, or a known type with bad fields.
 */
export function parseFrame<T extends { type: string }>(
  schema: z.ZodType<T>,
  knownTypes: readonly string[],
  data: string,
): ParseResult<T> {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch (err) {
    return { ok: false, code: ErrorCode.MalformedMessage, error: `frame is not valid JSON: ${(err as Error).message}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: ErrorCode.MalformedMessage, error: 'frame must be a JSON object with a "type"' };
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== 'string' || !knownTypes.includes(type)) {
    return {
      ok: false,
      code: ErrorCode.UnknownMessage,
      error: `unknown message type ${JSON.stringify(type)}; expected one of ${knownTypes.join(', ')}`,
    };
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    return { ok: false, code: ErrorCode.MalformedMessage, error: `invalid "${type}" message: ${z.prettifyError(parsed.error)}` };
  }
  return { ok: true, message: parsed.data };
}
