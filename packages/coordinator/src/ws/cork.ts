import type { Duplex } from 'node:stream';

const corked = new WeakSet<Duplex>();

/**
 * Holds the socket's writes until the end of this turn, so the answers to
 * one group commit (hundreds of submitted frames, an assign and a
 * result_ack) leave in one write instead of one syscall per frame.
 */
export function corkForTurn(socket: Duplex): void {
  if (corked.has(socket)) return;
  corked.add(socket);
  socket.cork();
  process.nextTick(() => {
    corked.delete(socket);
    socket.uncork();
  });
}
