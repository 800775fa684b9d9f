import { defineConfig } from 'vitest/config';

/** The suites that start a real broker run twice: partitions inline, then in partition workers. */
const brokerSuites = [
  'test/integration/server.test.ts',
  'test/integration/client.test.ts',
  'test/integration/durable-subscriptions.test.ts',
  'test/integration/queue-subscriptions.test.ts',
  'test/integration/scheduled-delivery.test.ts',
  'test/integration/replay.test.ts',
  'test/integration/wasm-filters.test.ts',
  'test/integration/filter-swap.test.ts',
  'test/integration/routing.test.ts',
  'test/integration/topic-transforms.test.ts',
];

export default defineConfig({
  test: {
    // Forks, not threads: the native addon maps files and the kill -9 tests spawn children;
    // --expose-gc lets tests prove that views outlive their segment.
    pool: 'forks',
    // Two files at a time (vitest's default is one fewer than the cores: 1 on a 2-core host), since most
    // integration files wait on brokers, sockets and timers rather than on the CPU. The reliability project
    // still runs alone, one file at a time, after the others (vitest runs a project with fileParallelism off
    // in a group of its own, last).
    maxWorkers: 2,
    execArgv: ['--expose-gc'],
    testTimeout: 60_000,
    // CI also writes a JSON report, summarised by scripts/test-summary.mjs as a plain closing line.
    reporters: process.env['CI'] ? ['default', ['json', { outputFile: 'test-results.json' }]] : ['default'],
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: { name: 'inline', include: ['test/**/*.test.ts'], exclude: ['test/reliability/**'] },
      },
      // The fault checks (docs/reliability.md) measure memory and time of brokers they start: one file at a time.
      {
        extends: true,
        test: { name: 'reliability', include: ['test/reliability/**/*.test.ts'], fileParallelism: false },
      },
      {
        extends: true,
        test: { name: 'workers', include: brokerSuites, env: { EDDY_TEST_WORKERS: '2' } },
      },
    ],
  },
});
