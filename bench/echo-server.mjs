// The floor of the peer benchmark: a bare WebSocket server in its own process
// (as the coordinator, Redis and PostgreSQL are) that echoes every frame.
import { WebSocketServer } from 'ws';

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
wss.on('connection', (ws) => ws.on('message', (data) => ws.send(data)));
wss.on('listening', () => console.log(JSON.stringify({ msg: 'listening', url: `ws://127.0.0.1:${wss.address().port}` })));
process.on('SIGTERM', () => wss.close(() => process.exit(0)));
