import WsWebSocket from 'ws';

export type { RawData } from 'ws';

/**
 * ws's WebSocket. Imported, not required: the bin runs the bundle
 * (scripts/bundle.mjs), where ws is bundled and no export lexer scans it.
 */
export const WebSocket = WsWebSocket;
export type WebSocket = WsWebSocket;
