// Bundles the built agent (dist/, from tsc -b) into one file,
// dist/bundle/rbtk-runner.js: the code bin/rbtk-runner.js runs. Part of
// `npm run build`.
//
// Why a bundle: the daemon stays resident on every host, and what an idle
// agent paid for was mostly loading, not state. Unbundled it loaded about a
// hundred ES modules: their sources stayed in the JS heap, and resolving each
// one (package.json lookups, file URLs) ran Node's loader hot enough for V8 to
// optimize it, which pages in the optimizing compiler, ~3–4 MB of the node
// binary, for good. One file with whitespace squeezed out is a single module
// to load. Idle RSS of a shell runner: 60.0 MB unbundled, 53.7 MB bundled
// (bench:agent); of a docker runner 68.0 MB, 55.6 MB with dockerode bundled
// as below (bench/HISTORY.md, 2026-12-03 evening).
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const outdir = `${pkgDir}dist/bundle`;

/**
 * Packages only doctor, register, metrics and GPU inventory use: an idle
 * runner never loads them. They stay in node_modules, and are required when
 * the module importing them first runs.
 */
const LAZY_PACKAGES = ['systeminformation', 'undici', 'prom-client', 'pino-pretty', 'fast-xml-parser'];

/**
 * dockerode is bundled (a docker runner loads it at start), but what it
 * requires for features rbtk-runner never uses stays out: gRPC and protobuf
 * for BuildKit sessions, ssh2 for an ssh:// DOCKER_HOST. Together 150 of
 * dockerode's 228 modules, and ~8 MB of a runner's RSS. Each is required on
 * first use of one of its members instead of when dockerode loads. (The
 * BuildKit paths would also look for their .proto files beside the bundle:
 * rbtk-runner builds no images.)
 */
const DEFERRED_PACKAGES = ['@grpc/grpc-js', '@grpc/proto-loader', 'protobufjs', 'ssh2'];

/**
 * esbuild hoists an external package's `import` to the top of a one-file
 * ES module, which would load it at startup even when the importing module
 * is itself loaded on first use (`await import('./docker.js')`). So each
 * lazy package is imported through a CommonJS stand-in,
 * `module.exports = require('undici')`: esbuild inlines the stand-in as a
 * wrapper that runs on first use, and its require() stays where it is. A
 * deferred package's stand-in goes one step further: it requires the package
 * when a member is first read. docker-modem reads ssh2's Client as it loads,
 * so that member is a constructor that requires ssh2 when first called.
 */
function standIn(name) {
  const id = JSON.stringify(name);
  if (!DEFERRED_PACKAGES.includes(name)) return `module.exports = require(${id});`;
  const load = `let real;\nconst load = () => (real ??= require(${id}));\n`;
  if (name !== 'ssh2') return `${load}module.exports = new Proxy({}, { get: (_, key) => load()[key] });`;
  return `${load}class Client { constructor(...args) { return new (load().Client)(...args); } }
module.exports = new Proxy({}, { get: (_, key) => (key === 'Client' ? Client : load()[key]) });`;
}

const requireLazyPackages = {
  name: 'require-lazy-packages',
  setup(b) {
    const filter = new RegExp(`^(${[...LAZY_PACKAGES, ...DEFERRED_PACKAGES].join('|')})$`);
    b.onResolve({ filter }, (args) => (args.namespace === 'lazy' ? { path: args.path, external: true } : { path: args.path, namespace: 'lazy' }));
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, (args) => ({ contents: standIn(args.path), loader: 'js' }));
  },
};

const { outputFiles } = await build({
  write: false,
  entryPoints: { 'rbtk-runner': `${pkgDir}dist/cli/runner.js` },
  outdir,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  plugins: [requireLazyPackages],
  // ws's optional native helpers: required in a try/catch, used if installed.
  external: ['bufferutil', 'utf-8-validate'],
  // Identifiers are kept, so stack traces in logs still name our functions;
  // the source map (node --enable-source-maps) leads back to src/.
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  sourcesContent: false,
  // The CommonJS packages inside (pino, yaml, commander, ws) call require(),
  // which an ES module does not have.
  banner: { js: "import { createRequire as __rbtkCreateRequire } from 'node:module'; const require = __rbtkCreateRequire(import.meta.url);" },
  define: { __filename: 'import.meta.filename', __dirname: 'import.meta.dirname' },
  logLevel: 'warning',
});

// Runners may start from this directory while it is rebuilt (a test suite, a dev fleet, a host
// upgrading in place): each file is replaced by a rename, never missing or half written, and an
// unchanged file is left alone, so its mtime (hosted pools' agentMark) moves only when the code does.
mkdirSync(outdir, { recursive: true });
const written = new Set(outputFiles.map((f) => basename(f.path)));
for (const file of outputFiles) {
  let current;
  try {
    current = readFileSync(file.path);
  } catch {
    // Not there yet.
  }
  if (current?.equals(file.contents)) continue;
  const temp = `${file.path}.${process.pid}.tmp`;
  writeFileSync(temp, file.contents);
  renameSync(temp, file.path);
}
// What an earlier build wrote and this one did not (renamed chunks, leftovers of a killed build),
// but not the temporary file of a build running beside this one: its rename would fail.
const TEMP = /\.(\d+)\.tmp$/;
const running = (pid) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM'; // alive, another user's
  }
};
for (const name of readdirSync(outdir)) {
  if (written.has(name)) continue;
  const pid = TEMP.exec(name)?.[1];
  if (pid !== undefined && Number(pid) !== process.pid && running(Number(pid))) continue;
  rmSync(join(outdir, name), { force: true });
}
