import { defineConfig } from 'vitest/config';

// Tests start real processes, sockets and databases: give them room, and run
// files in parallel only as far as this 2-core machine allows.
export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    setupFiles: ['test/helpers/failure-output.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
  },
});
