// A child process of bench/fleet.mjs holding many simulated runners (bench/rbtk.mjs
// SimRunner, heartbeating and rotating tokens as the agent does). Driven over IPC:
//   {id, cmd: 'connect', url, tokens, concurrency} → {id, connected, runnerIds}
//   {id, cmd: 'reset'}  → {id}: forget the figures so far (start of a measured window)
//   {id, cmd: 'stats'}  → {id, heartbeatMs: [...], rotationMs: [...], heartbeats, acks, rotations, closes, errors}
//   {id, cmd: 'exit'}   → closes every socket and exits
import { SimRunner } from './rbtk.mjs';

const runners = [];
let stats;
const reset = () =>
  (stats = { heartbeatMs: [], rotationMs: [], slow: [], closes: 0, startedAt: performance.now() });
reset();

async function connect(url, tokens, concurrency) {
  let next = 0;
  const one = async () => {
    while (next < tokens.length) {
      const token = tokens[next++];
      const sim = new SimRunner({
        heartbeat: true,
        onHeartbeatAck: (ms, sentAt) => {
          stats.heartbeatMs.push(ms);
          // The slow ones with when they were sent (epoch ms), to tell periodic stalls from noise.
          if (ms > 50 && stats.slow.length < 2_000) stats.slow.push([Math.round(performance.timeOrigin + sentAt), Math.round(ms)]);
        },
        onRotated: (ms) => stats.rotationMs.push(ms),
        onClose: () => stats.closes++,
      });
      await sim.connect(url, token);
      runners.push(sim);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, one));
  return { connected: runners.length, runnerIds: runners.map((r) => r.runnerId) };
}

process.on('message', async (m) => {
  const reply = (body) => process.send({ id: m.id, ...body });
  try {
    switch (m.cmd) {
      case 'connect':
        return reply(await connect(m.url, m.tokens, m.concurrency ?? 50));
      case 'reset':
        for (const r of runners) r.seq0 = r.seq;
        reset();
        return reply({});
      case 'stats':
        return reply({
          ...stats,
          heartbeats: runners.reduce((n, r) => n + r.seq - (r.seq0 ?? 0), 0),
          errors: runners.reduce((n, r) => n + (r.errors ?? 0), 0),
          seconds: (performance.now() - stats.startedAt) / 1000,
        });
      case 'exit':
        for (const r of runners) r.close();
        setTimeout(() => process.exit(0), 200);
        return;
    }
  } catch (err) {
    reply({ error: err.message });
  }
});

// The parent went away (finished or crashed): so do we.
process.on('disconnect', () => process.exit(0));
