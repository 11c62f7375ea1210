import type { Duplex } from 'node:stream';
import { type ErrorBody, ErrorCode } from '@rbtk/protocol';

/**
 * node:http's 'clientError': a request it could not parse (bad request line,
 * bad header, headers too large, timeout). Node would answer a bare status
 * line; this answers the same status with the JSON error body every other
 * refusal has, then closes the connection.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  // A response already on its way (junk pipelined after a request): node answered it with 400; writing more would corrupt it.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
    socket.destroy();
    return;
  }
  const [status, reason, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'request headers are too large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'the request did not arrive in time']
        : [400, 'Bad Request', `malformed HTTP request (${err.code ?? 'parse error'})`];
  const body = JSON.stringify({ error: { code: ErrorCode.BadRequest, message } } satisfies ErrorBody);
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
