/**
 * `startBroker` for the suites that run in both partition modes: the vitest
 * project sets EDDY_TEST_WORKERS (see vitest.config.ts); unset means inline.
 */
import { startBroker, type BrokerConfig, type RunningBroker } from '../../src/server/index.js';

export const testWorkers = Number(process.env['EDDY_TEST_WORKERS'] ?? 0);

export function startTestBroker(config: BrokerConfig): Promise<RunningBroker> {
  return startBroker({ workers: testWorkers, ...config });
}
