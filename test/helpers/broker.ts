/**
 * Brokers and clients for integration suites. `startTestBroker` runs in both
 * partition modes: the vitest project sets EDDY_TEST_WORKERS (see
 * vitest.config.ts); unset means inline. `useBrokers` adds the bookkeeping
 * every suite repeats: temp data dirs, and brokers and clients closed after
 * each test.
 */
import { afterEach } from 'vitest';
import { connect, type ClientOptions, type EddyClient } from '../../src/client/index.js';
import { startBroker, type BrokerConfig, type RunningBroker } from '../../src/server/index.js';
import { useTempDirs } from './temp-dir.js';

export const testWorkers = Number(process.env['EDDY_TEST_WORKERS'] ?? 0);

export function startTestBroker(config: BrokerConfig): Promise<RunningBroker> {
  return startBroker({ workers: testWorkers, ...config });
}

export interface TestBrokers {
  /** A fresh temp directory, removed after the test. */
  readonly tempDir: () => string;
  /**
   * A broker on an ephemeral port (1 MiB segments), on `dataDir` or a fresh one, with `config` on
   * top; closed after the test.
   */
  start(dataDir?: string, config?: BrokerConfig): Promise<RunningBroker>;
  /** A client of `broker`; closed after the test (before the brokers). */
  client(broker: RunningBroker, options?: ClientOptions): Promise<EddyClient>;
  /** Closes every client and broker now (a test restarting a broker on the same data). */
  closeAll(): Promise<void>;
}

export function useBrokers(prefix: string): TestBrokers {
  const tempDir = useTempDirs(prefix);
  const brokers: RunningBroker[] = [];
  const clients: EddyClient[] = [];
  const closeAll = async (): Promise<void> => {
    await Promise.all(clients.splice(0).map((client) => client.close()));
    await Promise.all(brokers.splice(0).map((broker) => broker.close()));
  };
  afterEach(closeAll);
  return {
    tempDir,
    async start(dataDir = tempDir(), config = {}) {
      const broker = await startTestBroker({
        port: 0,
        dataDir,
        topicDefaults: { segmentBytes: 1024 * 1024 },
        ...config,
      });
      brokers.push(broker);
      return broker;
    },
    async client(broker, options = {}) {
      const connected = await connect(broker.url, { reconnectMaxDelayMs: 200, ...options });
      clients.push(connected);
      return connected;
    },
    closeAll,
  };
}

/** Resolves once `check` holds, polling every 10 ms; throws naming `what` after `timeoutMs`. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
