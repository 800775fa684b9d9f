import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Forks, not threads: the native addon maps files and the kill -9 tests spawn children;
    // --expose-gc lets tests prove that views outlive their segment.
    pool: 'forks',
    execArgv: ['--expose-gc'],
    testTimeout: 60_000,
    // CI also writes a JSON report, summarised by scripts/test-summary.mjs as a plain closing line.
    reporters: process.env['CI'] ? ['default', ['json', { outputFile: 'test-results.json' }]] : ['default'],
    hookTimeout: 60_000,
  },
});
