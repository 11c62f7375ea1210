// npm run bench — every benchmark in turn, each in its own process; arguments
// (e.g. --quick) are passed to each. Each prints its table and saves its JSON
// under bench/results/; this exits non-zero if one of them could not run.
import { spawnSync } from 'node:child_process';
import { ROOT } from './lib.mjs';

const BENCHES = ['dispatch', 'pick', 'peers', 'fleet', 'agent', 'hosted'];
const failed = [];
for (const name of BENCHES) {
  console.log(`\n=== bench:${name} ${process.argv.slice(2).join(' ')}`);
  const r = spawnSync(process.execPath, [`${ROOT}bench/${name}.mjs`, ...process.argv.slice(2)], { stdio: 'inherit' });
  if (r.status !== 0) failed.push(name);
}
if (failed.length > 0) {
  console.error(`\nbenchmarks that did not finish: ${failed.join(', ')}`);
  process.exit(1);
}
