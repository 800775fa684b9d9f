/**
 * Hostile network input (issue 7; RELIABILITY.md P1): structure-aware
 * mutation of valid frames of every message type, plus random bytes, decoded
 * in-process and sent over loopback WebSockets to a broker in a child process.
 * CI-sized here; the soak run sets EDDY_FUZZ_FRAMES (≥ 1,000,000) and
 * EDDY_FUZZ_VERIFY_FRAMES. EDDY_FUZZ_SEED replays a run (the seed is printed).
 */
import { describe, expect, it } from 'vitest';
import { connect } from '../../src/client/index.js';
import { createEvent } from '../../src/events/index.js';
import {
  decodeFrame,
  encodeFrame,
  errorNameOf,
  isBrokerError,
  type Message,
} from '../../src/protocol/index.js';
import { publishBatch } from '../helpers/publish-batch.js';
import { checkPublish } from '../../src/server/publish-check.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import { RawClient } from '../integration/raw-client.js';
import {
  cpuSecondsOf,
  eventLoopDelay,
  healthStatus,
  memoryOf,
  mib,
  useBrokerProcess,
  useMemoryTempDirs,
  type BrokerProcess,
} from './fuzz/broker-process.js';
import { FrameMutator, sharedEventPublish, sharedSubscriptionList, sharedTopicList } from './fuzz/mutate.js';
import { FUZZ_PARTITIONS, FUZZ_TOPIC, seedFrames } from './fuzz/seed-frames.js';
import { fuzzOverWebSockets, percentile, type Failure } from './fuzz/wire-fuzzer.js';
import { countError, recordFault } from './report.js';

const tempDir = useTempDirs('frame-fuzz');
const memoryTempDir = useMemoryTempDirs('frame-fuzz');
const startBroker = useBrokerProcess();

const WIRE_FRAMES = Number(process.env['EDDY_FUZZ_FRAMES'] ?? 50_000);
/** In-process decoding is cheap: as many frames as go over the wire, and at least 200,000. */
const VERIFY_FRAMES = Number(process.env['EDDY_FUZZ_VERIFY_FRAMES'] ?? Math.max(200_000, WIRE_FRAMES));
/**
 * CI-sized runs repeat one fixed seed; soak-sized ones (scripts/soak/run.sh, repeated passes) draw
 * one from the clock. Either way it is printed and recorded: EDDY_FUZZ_SEED replays a run.
 */
const SEED = Number(
  process.env['EDDY_FUZZ_SEED'] ?? (WIRE_FRAMES > 200_000 ? Date.now() % 2 ** 31 : 20261129),
);
const CONNECTIONS = Number(process.env['EDDY_FUZZ_CONNECTIONS'] ?? 16);
/**
 * Resident memory the broker may gain over a CI-sized fuzz run (RELIABILITY.md P1 allows 50 MB for
 * the same check; 50,000 frames measured +17 MiB). A soak run creates more legitimate state (topics,
 * durable subscriptions, producer ids), so it gets twice that, and must not grow over its second
 * half by more than 16 MiB: a leak grows on, while the allocators' high-water marks settle (seed
 * 641086279: 88.8 MiB at the start, 165 at 1,000,000 frames, 186 at 1,500,000, then 169–212 and
 * 178 at 3,000,000 — which is why the soak sends 3,000,000; at 1,000,000 the second half still
 * holds some of the settling, +18 to +21 MiB).
 */
const RSS_GROWTH_MAX_BYTES = (WIRE_FRAMES > 200_000 ? 128 : 64) * 1024 * 1024;
const SECOND_HALF_GROWTH_MAX_BYTES = 16 * 1024 * 1024;
/** Longest one frame may keep the decoder busy: a frame that takes longer stalls every connection. */
const DECODE_MS_MAX = 50;

/** Topics the fuzz may create stay small: no more than 8 partitions of at most 1 MiB segments. */
function admit(message: Message): boolean {
  if (message.type === 'AddPartitions') return message.partitions <= 8;
  if (message.type !== 'CreateTopic') return true;
  const segment = message.config['segment.bytes'];
  return (
    message.partitions <= 8 &&
    (segment === undefined || (/^\d{1,7}$/.test(segment) && Number(segment) <= 1 << 20))
  );
}

/** The shortest of `runs` decodes (and publish checks) of `bytes`, in milliseconds. */
function bestOf(runs: number, bytes: Uint8Array): number {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    try {
      const frame = decodeFrame(bytes);
      if (frame.message.type === 'PublishBatch')
        checkPublish(frame.message, { maxBatchEvents: 10_000, maxBatchBytes: 32 << 20 });
    } catch {
      // Typed or not, the first run reported it.
    }
    best = Math.min(best, performance.now() - started);
  }
  return best;
}

const describeFailures = (failures: readonly Failure[]): string =>
  failures
    .slice(0, 10)
    .map(
      (f) =>
        `${f.what} [connection ${f.connection}, frame ${f.frame}, ${f.family} of ${f.seed ?? 'random'}] ${f.hex}`,
    )
    .join('\n');

describe('reliability > hostile input > frame fuzz', () => {
  it(
    `decodes ${VERIFY_FRAMES.toLocaleString('en')} mutated frames in-process with only typed errors, none slow`,
    async () => {
      console.log(`frame fuzz (in-process): seed ${SEED} (EDDY_FUZZ_SEED replays it)`);
      const { seeds, skipped } = await seedFrames();
      expect(seeds.length).toBeGreaterThanOrEqual(40);
      const mutator = new FrameMutator(SEED, seeds);
      const errors: Record<string, number> = {};
      const untyped: string[] = [];
      let decoded = 0;
      let publishChecked = 0;
      let slowest = { ms: 0, hex: '' };
      const started = performance.now();
      for (let i = 0; i < VERIFY_FRAMES; i++) {
        const { bytes, family, seed } = mutator.next();
        const frameStarted = performance.now();
        try {
          const frame = decodeFrame(bytes);
          decoded++;
          // The broker's next step for a publish: the event block and every event in it.
          if (frame.message.type === 'PublishBatch') {
            publishChecked++;
            checkPublish(frame.message, { maxBatchEvents: 10_000, maxBatchBytes: 32 << 20 });
          }
        } catch (error) {
          if (isBrokerError(error)) countError(errors, error.errorName);
          else if (untyped.length < 10)
            untyped.push(
              `${String(error)} [frame ${i}, ${family} of ${seed ?? 'random'}] ${Buffer.from(bytes).toString('hex')}`,
            );
        }
        // The shared-offset family is the known slow case, checked on its own below. Anything else
        // slow is timed again (best of 3), so a garbage collection or a compilation is not blamed on it.
        let ms = performance.now() - frameStarted;
        if (ms > DECODE_MS_MAX && family !== 'shared-offsets') ms = Math.min(ms, bestOf(3, bytes));
        if (ms > slowest.ms && family !== 'shared-offsets')
          slowest = { ms, hex: Buffer.from(bytes.subarray(0, 256)).toString('hex') };
      }
      const seconds = (performance.now() - started) / 1000;
      expect(untyped, untyped.join('\n')).toEqual([]);
      expect(slowest.ms, `slowest frame: ${slowest.hex}`).toBeLessThan(DECODE_MS_MAX);
      expect(errors['MALFORMED_FRAME']).toBeGreaterThan(VERIFY_FRAMES / 4);
      recordFault({
        fault: 'fuzzed frames, in-process decode + publish check',
        runs: VERIFY_FRAMES,
        acknowledged: 0,
        lost: 0,
        duplicated: 0,
        recoveryMs: [],
        errors,
        note:
          `seed ${SEED}; ${decoded} decoded (${publishChecked} publishes checked); ` +
          `${Math.round(VERIFY_FRAMES / seconds)} frames/s; slowest ${slowest.ms.toFixed(1)} ms` +
          (skipped.length > 0 ? `; seeds not encodable in this checkout: ${skipped.join(', ')}` : ''),
      });
    },
    Math.max(60_000, VERIFY_FRAMES * 0.5),
  );

  // Bug (open): the verifier counts objects but not shared ones, so a buffer whose vectors repeat one
  // offset is a DAG holding n × m objects in 4 × (n + m) bytes; 1 << 24 objects are allowed. The
  // broker then decodes every one of them (decodeFrame builds the TopicList, checkPublish's error
  // path decodes the whole event block), all on its event loop.
  it('verifies and decodes a frame whose offsets all share one object in time bounded by its size', () => {
    const frames = {
      'TopicList 700 topics × 700 config entries': sharedTopicList(700, 700),
      'SubscriptionList 500 × (500 members + 500 partitions)': sharedSubscriptionList(500, 500),
      'PublishBatch 700 events × 700 extensions': sharedEventPublish(700, 700, FUZZ_TOPIC),
    };
    const timings: string[] = [];
    let slowestMs = 0;
    for (const [name, bytes] of Object.entries(frames)) {
      const started = performance.now();
      let outcome = 'decoded';
      try {
        const frame = decodeFrame(bytes);
        if (frame.message.type === 'PublishBatch')
          checkPublish(frame.message, { maxBatchEvents: 10_000, maxBatchBytes: 32 << 20 });
      } catch (error) {
        expect(isBrokerError(error), String(error)).toBe(true);
        outcome = (error as { errorName: string }).errorName;
      }
      const ms = performance.now() - started;
      slowestMs = Math.max(slowestMs, ms);
      timings.push(`${name} (${bytes.length} bytes): ${outcome} in ${ms.toFixed(0)} ms`);
    }
    console.log(`shared-offset frames:\n  ${timings.join('\n  ')}`);
    expect(slowestMs, timings.join('; ')).toBeLessThan(DECODE_MS_MAX);
  });

  it('keeps answering other connections while one sends frames whose offsets share one object', async () => {
    const broker = await startBroker(tempDir(), { topicDefaults: { segmentBytes: 64 * 1024 } });
    await prepare(broker);
    const attacker = await RawClient.connect(broker.url);
    const canary = await RawClient.connect(broker.url);
    await canary.request({ type: 'ListTopics' });
    const answered = attacker.next((frame) => frame.message.type === 'Error', 60_000);
    attacker.sendRaw(sharedTopicList(700, 700));
    attacker.sendRaw(sharedEventPublish(700, 700, FUZZ_TOPIC));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const started = performance.now();
    const listed = canary.next((frame) => frame.requestId === 77, 60_000);
    canary.sendRaw(encodeFrame(77, { type: 'ListTopics' }));
    await listed;
    const canaryMs = performance.now() - started;
    const answer = await answered;
    attacker.close();
    canary.close();
    console.log(
      `canary round trip while the broker decoded two shared-offset frames: ${canaryMs.toFixed(0)} ms`,
    );
    expect(answer.message).toMatchObject({ type: 'Error' });
    expect(broker.alive()).toBe(true);
    expect(canaryMs, 'a well-behaved client waited this long for ListTopics').toBeLessThan(250);
  });

  // Bug (open), found by the soak (seed 77): a delivery time past the largest Date (8.64e15 ms)
  // passes decodeFrame (it is below 2^53) and reaches the broker's "more than 365 days ahead"
  // refusal, whose message calls new Date(dueMs).toISOString(): a RangeError, answered INTERNAL.
  it('refuses a publish scheduled past the largest Date with INVALID_REQUEST, not INTERNAL', async () => {
    const broker = await startBroker(memoryTempDir(), { topicDefaults: { segmentBytes: 64 * 1024 } });
    await prepare(broker);
    const client = await RawClient.connect(broker.url);
    try {
      const answers: string[] = [];
      for (const deliverAtMs of [8.64e15 + 1, 2 ** 53 - 1]) {
        const answer = await client.request(
          publishBatch(FUZZ_TOPIC, [{ id: 'late', source: '/fuzz', type: 'late' }], { deliverAtMs }),
        );
        answers.push(
          answer.type === 'Error' ? `${errorNameOf(answer.code)}: ${answer.message}` : answer.type,
        );
      }
      expect(broker.alive()).toBe(true);
      for (const answer of answers) expect(answer).toMatch(/^INVALID_REQUEST/);
    } finally {
      client.close();
    }
  });

  it(
    `answers ${WIRE_FRAMES.toLocaleString('en')} fuzzed frames over loopback WebSockets without a crash, hang or leak`,
    async () => {
      console.log(
        `frame fuzz (WebSocket): seed ${SEED} (EDDY_FUZZ_SEED replays it), ${CONNECTIONS} connections`,
      );
      const { seeds } = await seedFrames();
      const broker = await startBroker(memoryTempDir(), { topicDefaults: { segmentBytes: 64 * 1024 } });
      const pid = broker.child.pid as number;
      await prepare(broker);
      await eventLoopDelay(broker.url); // resets the broker's histogram: what follows is the fuzz's
      const before = memoryOf(pid);
      const started = performance.now();
      const rssSamples: number[] = [];
      const cpuBefore = cpuSecondsOf(pid);
      const clientCpuBefore = process.cpuUsage();
      const result = await fuzzOverWebSockets({
        url: broker.url,
        frames: WIRE_FRAMES,
        connections: CONNECTIONS,
        mutatorFor: (connection) => new FrameMutator(SEED * 31 + connection, seeds),
        answerTimeoutMs: 10_000,
        noHelloShare: 0.03,
        admit,
        progress: (sent) => {
          rssSamples.push(memoryOf(pid).rssBytes);
          console.log(
            `  ${sent} frames, ${((performance.now() - started) / 1000).toFixed(1)} s, RSS ${mib(memoryOf(pid).rssBytes)} MiB`,
          );
        },
      });

      const after = memoryOf(pid);
      const brokerCpu = cpuSecondsOf(pid) - cpuBefore;
      const clientUsage = process.cpuUsage(clientCpuBefore);
      const clientCpu = (clientUsage.user + clientUsage.system) / 1e6;
      const loop = await eventLoopDelay(broker.url);
      const alive = broker.alive();
      const health = await healthStatus(broker.url);
      const roundTrip = alive ? await wellBehavedRoundTrip(broker) : 'broker dead';
      const topics = alive ? await topicCount(broker) : 0;
      const growth = after.rssBytes - before.rssBytes;
      const summary =
        `seed ${SEED}; ${result.sent} frames on ${result.connectionsOpened} connections in ${(result.durationMs / 1000).toFixed(1)} s ` +
        `(${Math.round(result.sent / (result.durationMs / 1000))}/s); ${result.locallyMalformed} malformed, ` +
        `${result.probes} decoded and probed, ${result.withheld} withheld (topics too large for the test disk); ` +
        `answer p50 ${percentile(result.latenciesMs, 50).toFixed(2)} ms, p99 ${percentile(result.latenciesMs, 99).toFixed(1)} ms, ` +
        `max ${percentile(result.latenciesMs, 100).toFixed(0)} ms; broker event loop p99 ${loop.p99Ms.toFixed(1)} ms, ` +
        `max ${loop.maxMs.toFixed(0)} ms; RSS ${mib(before.rssBytes)} → ${mib(after.rssBytes)} MiB ` +
        `(anon ${mib(before.anonBytes)} → ${mib(after.anonBytes)}, file ${mib(before.fileBytes)} → ${mib(after.fileBytes)}, shmem ${mib(before.shmemBytes)} → ${mib(after.shmemBytes)}); ` +
        `${topics} topics afterwards; CPU: broker ${brokerCpu.toFixed(1)} s, fuzzer ${clientCpu.toFixed(1)} s`;
      console.log(
        `${summary}\n  families: ${JSON.stringify(result.families)}\n  answers: ${JSON.stringify(result.errors)}\n  slowest: ${result.slowest.map((s) => `${s.ms.toFixed(0)} ms ${s.what}`).join('; ')}`,
      );

      expect(alive, `the broker died:\n${broker.output()}`).toBe(true);
      expect(health).toBe(200);
      expect(result.failures, describeFailures(result.failures)).toEqual([]);
      expect(result.sent).toBe(WIRE_FRAMES);
      expect(growth, summary).toBeLessThan(RSS_GROWTH_MAX_BYTES);
      const halfway = rssSamples[Math.floor(rssSamples.length / 2)] ?? before.rssBytes;
      if (rssSamples.length >= 10)
        expect(after.rssBytes - halfway, summary).toBeLessThan(SECOND_HALF_GROWTH_MAX_BYTES);
      expect(roundTrip).toBe('ok');
      recordFault({
        fault: 'fuzzed frames over WebSocket (structure-aware + random)',
        runs: result.sent,
        acknowledged: 0,
        lost: 0,
        duplicated: 0,
        recoveryMs: [],
        errors: result.errors,
        note: summary,
      });
    },
    Math.max(120_000, WIRE_FRAMES * 3),
  );
});

/** The topic and durable subscription the seed frames name, with a few events in it. */
async function prepare(broker: BrokerProcess): Promise<void> {
  const eddy = await connect(broker.url, { reconnectMaxDelayMs: 200 });
  try {
    await eddy.createTopic(FUZZ_TOPIC, { partitions: FUZZ_PARTITIONS });
    for (let i = 0; i < 20; i++)
      await eddy.publish(
        FUZZ_TOPIC,
        createEvent({ id: `seed-${i}`, source: '/fuzz', type: 'seed', data: { i } }),
      );
    await eddy.createSubscription('fuzz-group', { topic: FUZZ_TOPIC, type: 'queue' });
  } finally {
    await eddy.close();
  }
}

/** A normal client publishes and reads its events back: 'ok', or what went wrong. */
async function wellBehavedRoundTrip(broker: BrokerProcess): Promise<string> {
  const eddy = await connect(broker.url, { reconnectMaxDelayMs: 200 });
  try {
    await eddy.createTopic('after.fuzz', { partitions: 1 });
    const events = [0, 1, 2].map((i) =>
      createEvent({ id: `after-${i}`, source: '/after', type: 'check', data: { i } }),
    );
    const published = await eddy.publish('after.fuzz', events, { ack: 'durable' });
    const fetched = await eddy.fetch('after.fuzz', published.partition, published.baseOffset);
    const ids = fetched.events.map((d) => d.event.id);
    return ids.join() === 'after-0,after-1,after-2' ? 'ok' : `fetched ${ids.join()}`;
  } catch (error) {
    return `failed: ${String(error)}`;
  } finally {
    await eddy.close();
  }
}

async function topicCount(broker: BrokerProcess): Promise<number> {
  const eddy = await connect(broker.url, { reconnectMaxDelayMs: 200 });
  try {
    return (await eddy.listTopics()).length;
  } finally {
    await eddy.close();
  }
}
