import type WsWebSocket from 'ws';
import { requireCjs } from './require-cjs.js';

export type { RawData } from 'ws';

/** ws's WebSocket, loaded through require() (see require-cjs.ts). */
export const WebSocket = requireCjs('ws') as typeof WsWebSocket;
export type WebSocket = WsWebSocket;
