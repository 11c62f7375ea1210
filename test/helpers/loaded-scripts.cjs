// Preload (node --require): on exit, writes the file: URL of every script
// this process compiled, one per line, to $RBTK_TEST_LOADED_SCRIPTS. The
// inspector's script list covers ES modules and CommonJS alike, which
// require.cache does not.
const { writeFileSync } = require('node:fs');
const inspector = require('node:inspector');

const session = new inspector.Session();
session.connect();
const urls = new Set();
session.on('Debugger.scriptParsed', ({ params }) => {
  if (params.url.startsWith('file:')) urls.add(params.url);
});
session.post('Debugger.enable');
process.on('exit', () => writeFileSync(process.env.RBTK_TEST_LOADED_SCRIPTS, [...urls].join('\n')));
