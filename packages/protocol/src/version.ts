/**
 * The runner WebSocket protocol version. Bump it on any change a peer of the
 * previous version could misread; the coordinator refuses a mismatch at the
 * handshake with a message that names both versions.
 */
export const PROTOCOL_VERSION = 1;

/** Request header that carries the protocol version on the WebSocket upgrade. */
export const PROTOCOL_VERSION_HEADER = 'rbtk-protocol-version';
