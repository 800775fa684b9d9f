/**
 * Hostile WASM filters under load (issue 7; RELIABILITY.md W): subscriptions
 * whose filters loop forever, grow memory to the cap, or trap on every call,
 * on a topic being published to, while a plain subscription on the same topic
 * is timed. The sandbox stops each bad filter (quarantine, disable) and the
 * plain subscriber's throughput is compared with a run without them. The
 * ratio is reported; the test fails only if the bad filters starve the good
 * subscriber or stop the broker (benchmarks, not tests, judge throughput
 * finely on a shared 2-core machine).
 */
import { describe, expect, it } from 'vitest';
import { connect, isBrokerError, type EddyClient } from '../../src/client/index.js';
import { hostile } from '../filters/fixtures/wasm-modules.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import { useServe, type ServedBroker } from '../helpers/serve.js';
import { countError, recordFault } from './report.js';

const tempDir = useTempDirs('hostile-filters');
const serve = useServe();

const EVENTS = 40_000;
const BATCH = 500;

async function upload(broker: ServedBroker, name: string, wasm: Uint8Array): Promise<void> {
  const put = await fetch(`${broker.url}/v1/filters/${name}?kind=filter`, { method: 'PUT', body: wasm });
  expect(put.status).toBe(201);
}

/** Publishes EVENTS events to `topic` and resolves with the events/s a plain subscriber received them at. */
async function timedRound(eddy: EddyClient, topic: string): Promise<number> {
  let received = 0;
  let done: () => void = () => undefined;
  const all = new Promise<void>((resolve) => (done = resolve));
  const subscription = await eddy.subscribe(topic, { from: 'latest' }, () => {
    if (++received === EVENTS) done();
  });
  const started = performance.now();
  const data = { amount: 1, note: 'x'.repeat(60) };
  const publishing: Promise<unknown>[] = [];
  for (let i = 0; i < EVENTS; i += BATCH)
    publishing.push(
      eddy.publish(
        topic,
        Array.from({ length: BATCH }, () => ({ type: 'load', source: '/reliability', data })),
      ),
    );
  await Promise.all(publishing);
  await Promise.race([all, new Promise((resolve) => setTimeout(resolve, 60_000))]);
  const seconds = (performance.now() - started) / 1000;
  await subscription.close();
  expect(received).toBe(EVENTS);
  return EVENTS / seconds;
}

describe('reliability > hostile filters', () => {
  it(
    'keeps a plain subscriber served while filters that loop, grow memory and trap are stopped',
    { timeout: 180_000 },
    async () => {
      const broker = await serve(tempDir());
      const eddy = await connect(broker.url, { reconnectMaxDelayMs: 0 });
      eddy.onError = () => undefined;
      await eddy.createTopic('load', { partitions: 2 });
      await upload(broker, 'spin', hostile.infiniteLoop());
      await upload(broker, 'hog', hostile.growForever());
      await upload(broker, 'boom', hostile.trapAlways());
      await timedRound(eddy, 'load'); // warm-up
      const baseline = await timedRound(eddy, 'load');

      // Ten subscriptions per hostile filter, each on its own connection, so each failure ends its own.
      const errors: Record<string, number> = {};
      const hostileClients: EddyClient[] = [];
      for (const wasm of ['spin', 'hog', 'boom'])
        for (let i = 0; i < 10; i++) {
          const client = await connect(broker.url, { reconnectMaxDelayMs: 0 });
          client.onError = (error) => countError(errors, isBrokerError(error) ? error.errorName : 'Error');
          hostileClients.push(client);
          await client.subscribe('load', { from: 'latest', filter: { wasm } }, () => undefined);
        }
      // While the bad filters are being stopped (the watchdog's budget, a fresh filter thread), then after.
      const whileStopping = await timedRound(eddy, 'load');
      const withHostile = await timedRound(eddy, 'load');
      const healthy = await fetch(`${broker.url}/healthz`);
      const ratio = withHostile / baseline;
      recordFault({
        fault: '30 subscriptions with looping, memory-hogging and trapping WASM filters',
        runs: 30,
        acknowledged: EVENTS,
        lost: 0,
        duplicated: 0,
        recoveryMs: [],
        errors,
        note:
          `a plain subscriber's rate ${Math.round(baseline)} events/s without them; ${Math.round(whileStopping)} ` +
          `(${(whileStopping / baseline).toFixed(2)}×) over the ${EVENTS} events during which they were stopped; ` +
          `${Math.round(withHostile)} (${ratio.toFixed(2)}×) over the next ${EVENTS} (target ≥ 0.9×, judged by benchmarks)`,
      });
      await Promise.all(hostileClients.map((client) => client.close().catch(() => undefined)));
      await eddy.close();
      expect(healthy.status).toBe(200);
      expect(errors['FILTER_FAILED'] ?? 0).toBeGreaterThan(0);
      expect(whileStopping / baseline).toBeGreaterThan(0.2);
      expect(ratio).toBeGreaterThan(0.3);
    },
  );
});
