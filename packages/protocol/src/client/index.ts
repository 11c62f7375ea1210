export * from './backoff.js';
export * from './log-cursor.js';
export * from './submitter-socket.js';
export * from './submitter-client.js';
