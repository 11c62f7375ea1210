#!/usr/bin/env node
/**
 * `rbtk`: the operator CLI. The only file of it that touches process.argv and the
 * exit status; everything else is in ./rbtk/ and writes through the Io it is given.
 */
import { runRbtk } from './rbtk/program.js';

const code = await runRbtk(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  cwd: process.cwd(),
  now: () => Date.now(),
});
// exitCode rather than exit(): lets stdout drain when it is a pipe.
process.exitCode = code;
