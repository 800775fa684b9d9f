/**
 * Clock jumps (issue 7; RELIABILITY.md D5): a broker in a child process runs
 * under libfaketime, whose offset file the test rewrites while it runs: the
 * wall clock (`Date.now()`, CLOCK_REALTIME) steps back 1 h, forward 30 days,
 * back again and forward again, while the monotonic clock (performance.now,
 * CLOCK_MONOTONIC; DONT_FAKE_MONOTONIC=1) runs on untouched, as when NTP or
 * an operator steps a host's clock.
 *
 * - Timers run on the monotonic clock: an ack timeout, a nack's retry delay,
 *   a member's session timeout and a scheduled delivery each fire as long
 *   after their start as they would without a jump, measured on the test's
 *   own (unfaked) monotonic clock, and a durable publish (the group commit's
 *   timer) is answered as fast.
 * - Retention deletes only by policy. Time retention compares record
 *   timestamps with the wall clock, as Kafka's retention.ms does: a clock
 *   stepped 30 days ahead is 30 days later as far as the policy knows, and a
 *   topic kept for 7 days loses its closed segments — what the policy says
 *   for data of that age. A topic without retention, or with size retention
 *   it is under, loses nothing.
 * - Nothing reappears: no acked queue event, committed stream event or
 *   delivered scheduled batch is delivered again, across the jumps and across
 *   a restart under the stepped clock.
 *
 * Skipped, with the reason printed, where libfaketime is missing or cannot
 * step Node's clock; with EDDY_REQUIRE_SERVICES=1 (CI, which installs it)
 * that fails instead.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { connect, isBrokerError, type DeliveredEvent, type EddyClient } from '../../src/client/index.js';
import { serviceOrSkip } from '../bench/services.js';
import { eventually } from '../helpers/broker.js';
import { useServe, type ServedBroker } from '../helpers/serve.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import { RawClient } from '../integration/raw-client.js';
import { countError, recordFault } from './report.js';

const tempDir = useTempDirs('clock-jumps');
const serve = useServe();

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
const KiB = 1024;
const ACK_TIMEOUT_MS = 2000;
const NACK_DELAY_MS = 1500;
const SESSION_TIMEOUT_MS = 1000;
/** A timer may fire this much earlier than its start plus its delay, by when the test saw the start. */
const EARLY_MS = 250;
/** …and this much later, on a loaded 2-core machine; a jump would move it by an hour or to at once. */
const LATE_MS = 2000;
/** The steps of the wall clock, relative to the true time, in libfaketime's notation. */
const STEPS = [
  { spec: '-1h', offsetMs: -HOUR_MS },
  { spec: '+30d', offsetMs: 30 * DAY_MS },
  { spec: '-1h', offsetMs: -HOUR_MS },
  { spec: '+30d', offsetMs: 30 * DAY_MS },
] as const;
/** Events in each retention topic (1 KiB each, 64 KiB segments: several closed segments). */
const RETAINED_EVENTS = 300;
/** How often the broker child applies retention (EDDY_RETENTION_CHECK_INTERVAL_MS; 60 s by default). */
const MAINTENANCE_INTERVAL_MS = 1000;

const LIBFAKETIME_PATHS = [
  process.env['EDDY_LIBFAKETIME'],
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/faketime/libfaketime.so.1',
  '/usr/local/lib/faketime/libfaketime.so.1',
];
const libfaketime = LIBFAKETIME_PATHS.find(
  (file) => file !== undefined && file !== '' && fs.existsSync(file),
);

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const now = (): number => performance.now();

/** The environment that puts a Node process's wall clock at the offset written in `clockFile`. */
function fakedClock(clockFile: string): Record<string, string> {
  return {
    LD_PRELOAD: [libfaketime, process.env['LD_PRELOAD']].filter(Boolean).join(' '),
    FAKETIME_TIMESTAMP_FILE: clockFile,
    // Read the file at every clock call (about 8 µs each), so a step takes effect at once.
    FAKETIME_NO_CACHE: '1',
    // A stepped wall clock leaves CLOCK_MONOTONIC alone; libfaketime fakes it too unless told not to.
    DONT_FAKE_MONOTONIC: '1',
  };
}

/** Steps the faked clock: the file is replaced whole, so the broker never reads it half written. */
function setClock(clockFile: string, spec: string): void {
  fs.writeFileSync(`${clockFile}.tmp`, `${spec}\n`);
  fs.renameSync(`${clockFile}.tmp`, clockFile);
}

/**
 * Why libfaketime cannot step a Node process's wall clock here (and leave its
 * monotonic clock alone), or null when it can: a child Node run 30 days ahead.
 */
function faketimeProblem(): string | null {
  if (libfaketime === undefined)
    return `libfaketime is not installed (apt-get install faketime; looked in ${LIBFAKETIME_PATHS.filter(Boolean).join(', ')})`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eddy-faketime-probe-'));
  try {
    const clockFile = path.join(dir, 'clock');
    setClock(clockFile, '+30d');
    const before = process.hrtime.bigint();
    const probe = spawnSync(
      process.execPath,
      ['-e', 'process.stdout.write(JSON.stringify([Date.now(), String(process.hrtime.bigint())]))'],
      { env: { ...process.env, ...fakedClock(clockFile) }, encoding: 'utf8', timeout: 20_000 },
    );
    const after = process.hrtime.bigint();
    if (probe.status !== 0)
      return `node under libfaketime (${libfaketime}) failed: ${probe.stderr || probe.error}`;
    const [wallMs, monotonic] = JSON.parse(probe.stdout) as [number, string];
    const aheadMs = wallMs - Date.now();
    if (Math.abs(aheadMs - 30 * DAY_MS) > 60_000)
      return `libfaketime (${libfaketime}) did not step Node's Date.now() 30 days ahead (it was ${aheadMs} ms ahead)`;
    if (BigInt(monotonic) < before || BigInt(monotonic) > after)
      return `libfaketime (${libfaketime}) moved Node's monotonic clock despite DONT_FAKE_MONOTONIC=1`;
    return null;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const problem = faketimeProblem();
const available = serviceOrSkip(problem === null, 'the clock-jump checks', problem ?? '');

/** `eddy serve` with its wall clock at the offset in `clockFile`. */
function serveFaked(dataDir: string, clockFile: string): Promise<ServedBroker> {
  const env = { ...fakedClock(clockFile), EDDY_RETENTION_CHECK_INTERVAL_MS: String(MAINTENANCE_INTERVAL_MS) };
  const saved = Object.keys(env).map((name) => [name, process.env[name]] as const);
  Object.assign(process.env, env);
  try {
    return serve(dataDir); // spawns before its first await: the child takes this environment
  } finally {
    for (const [name, value] of saved)
      if (value === undefined) Reflect.deleteProperty(process.env, name);
      else process.env[name] = value;
  }
}

async function client(broker: ServedBroker, errors: Record<string, number>): Promise<EddyClient> {
  const connected = await connect(broker.url, { reconnectMaxDelayMs: 0 });
  connected.onError = (error) => countError(errors, isBrokerError(error) ? error.errorName : 'Error');
  return connected;
}

/** Whether the broker stamps a new event with a time within 30 s of the true time plus `offsetMs`. */
async function brokerClockAt(c: EddyClient, topic: string, offsetMs: number): Promise<boolean> {
  await c.createTopic(topic);
  await c.publish(topic, { type: 'probe', source: '/reliability', id: topic });
  const expectedMs = Date.now() + offsetMs;
  const found: string[] = [];
  await c.replay(
    topic,
    { from: { time: expectedMs - 30_000 }, to: { time: expectedMs + 30_000 } },
    (d) => void found.push(d.event.id),
  );
  return found.includes(topic);
}

/** `delayMs` after `startMs` as a timer should fire: the offset from that, or why it is off. */
function lateness(
  what: string,
  startMs: number,
  firedMs: number | undefined,
  delayMs: number,
): string | null {
  if (firedMs === undefined) return `${what}: never`;
  const offMs = Math.round(firedMs - startMs - delayMs);
  return offMs < -EARLY_MS || offMs > LATE_MS ? `${what}: ${offMs} ms off its ${delayMs} ms` : null;
}

interface QueueRecord {
  /** Arrival of each delivery, by `id/attempt`. */
  readonly arrivals: Map<string, number>;
  /** When each nack was sent, by id. */
  readonly nackedAt: Map<string, number>;
  /** Ids whose ack the broker answered within half the ack timeout of the delivery: certainly taken. */
  readonly acked: Set<string>;
  /** Deliveries of an event after such an ack. */
  readonly reappeared: string[];
}

describe.skipIf(!available)('reliability > clock jumps', () => {
  it(
    'keeps ack timeouts, retry delays, sessions and scheduled delivery on time, deletes only by retention policy, and delivers nothing acked again while the wall clock steps 1 h back and 30 days ahead',
    { timeout: 180_000 },
    async () => {
      const dir = tempDir();
      const dataDir = path.join(dir, 'data');
      const clockFile = path.join(dir, 'clock');
      setClock(clockFile, '+0');
      const errors: Record<string, number> = {};
      const late: string[] = [];
      const flag = (fault: string | null): void => {
        if (fault !== null) late.push(fault);
      };
      let broker = await serveFaked(dataDir, clockFile);
      const c = await client(broker, errors);
      expect(await brokerClockAt(c, 'clock-0', 0)).toBe(true);

      // Retention: none, by size (never reached), by time (7 days); 64 KiB segments.
      const retentionCreatedAt = now();
      const retention = {
        kept: {},
        sized: { 'retention.bytes': String(8 * 1024 * KiB) },
        aged: { 'retention.ms': String(7 * DAY_MS) },
      };
      const pad = 'x'.repeat(KiB - 100);
      for (const [topic, config] of Object.entries(retention)) {
        await c.createTopic(topic, { config: { 'segment.bytes': String(64 * KiB), ...config } });
        for (let i = 0; i < RETAINED_EVENTS; i += 10)
          await c.publish(
            topic,
            Array.from({ length: 10 }, (_, k) => ({
              type: 'fill',
              source: '/reliability',
              id: `${topic}-${i + k}`,
              data: pad,
            })),
            { ack: 'durable' },
          );
      }

      // A queue: in each step one job is held past its ack timeout, one nacked with a delay, the rest acked.
      await c.createTopic('work');
      await c.createSubscription('workers', {
        topic: 'work',
        type: 'queue',
        from: 'earliest',
        config: { 'ack.timeout.ms': String(ACK_TIMEOUT_MS) },
      });
      const queue: QueueRecord = {
        arrivals: new Map(),
        nackedAt: new Map(),
        acked: new Set(),
        reappeared: [],
      };
      const workerClient = await client(broker, errors);
      const worker = await workerClient.join('workers', { ack: 'manual' }, (d) => {
        const id = d.event.id;
        const arrivedMs = now();
        queue.arrivals.set(`${id}/${d.attempt}`, arrivedMs);
        if (queue.acked.has(id)) queue.reappeared.push(`${id} (attempt ${d.attempt})`);
        if (d.attempt === 1 && id.endsWith('-held')) return;
        if (d.attempt === 1 && id.endsWith('-nacked')) {
          queue.nackedAt.set(id, now());
          worker.nack(d, { delayMs: NACK_DELAY_MS });
          return;
        }
        worker.ack(d).then(
          () => {
            if (now() - arrivedMs < ACK_TIMEOUT_MS / 2) queue.acked.add(id);
          },
          (error: unknown) => countError(errors, `ack ${isBrokerError(error) ? error.errorName : 'Error'}`),
        );
      });

      // A stream group with a heartbeating member, read from the start; a second member that never heartbeats.
      await c.createTopic('ledger');
      await c.createSubscription('readers', {
        topic: 'ledger',
        from: 'earliest',
        config: { 'session.timeout.ms': String(SESSION_TIMEOUT_MS) },
      });
      const readerErrors: Record<string, number> = {};
      const readerClient = await client(broker, readerErrors);
      const ledgerSeen: number[] = [];
      let reassigned = 0;
      await readerClient.join(
        'readers',
        { member: 'reader', onAssignment: () => void reassigned++ },
        (d) => void ledgerSeen.push(d.offset),
      );
      let publishingLedger = true;
      const publishMs: number[] = [];
      const ledgerPublishing = (async () => {
        for (let i = 0; publishingLedger; i++) {
          const sentMs = now();
          try {
            await c.publish(
              'ledger',
              { type: 'entry', source: '/reliability', id: `ledger-${i}` },
              { ack: 'durable' },
            );
            publishMs.push(now() - sentMs);
          } catch (error) {
            countError(errors, `publish ${isBrokerError(error) ? error.errorName : 'Error'}`);
          }
          await sleep(100);
        }
      })();

      // Scheduled delivery: around each step, batches that come due during it (see the step loop).
      await c.createTopic('later');
      const scheduledArrivals = new Map<string, number[]>();
      await c.subscribe('later', { from: 'earliest' }, (d: DeliveredEvent) => {
        scheduledArrivals.set(d.event.id, [...(scheduledArrivals.get(d.event.id) ?? []), now()]);
      });
      const scheduled = new Map<string, { publishedMs: number; delayMs: number }>();
      /** A batch due `delayMs` from now by the broker's clock, which is `offsetMs` off the true time. */
      const schedule = async (id: string, delayMs: number, offsetMs: number): Promise<void> => {
        const publishedMs = now();
        await c.publish(
          'later',
          { type: 'timer', source: '/reliability', id },
          { deliverAt: Date.now() + offsetMs + delayMs },
        );
        scheduled.set(id, { publishedMs, delayMs });
      };
      const scheduledBy = (ids: readonly string[]): boolean => ids.every((id) => scheduledArrivals.has(id));

      // The silent member joins just before the first step: its session must end 1 s later regardless.
      const silent = await RawClient.connect(broker.url);
      const silentJoinedMs = now();
      expect(
        await silent.request({
          type: 'Subscribe',
          subscriptionId: 1,
          topic: '',
          partition: -1,
          start: { kind: 'latest', value: 0 },
          credits: 0,
          durable: 'readers',
          member: 'silent',
        }),
      ).toEqual({ type: 'Ok' });
      const silentRemoved = silent
        .next((f) => f.message.type === 'Assignment' && f.message.generation === 0, 6_000)
        .then(
          () => now(),
          () => undefined,
        );

      // Each step: jobs in hand and batches scheduled under the old clock, then the step, then a
      // batch scheduled under the new one; the step lasts until all of them came (or should have).
      // Waits that time out do not fail here: what never came is reported below as such.
      const stepsSeen: boolean[] = [];
      let offsetMs = 0;
      for (const [index, step] of STEPS.entries()) {
        const jobs = ['held', 'nacked', 'acked-1', 'acked-2'].map((kind) => `job-${index}-${kind}`);
        for (const id of jobs) await c.publish('work', { type: 'job', source: '/reliability', id });
        await eventually(
          () => jobs.every((id) => queue.arrivals.has(`${id}/1`)),
          `the jobs of step ${index + 1}`,
        );
        const timers = [`step-${index}-before-3s`, `step-${index}-before-6s`, `step-${index}-after-2s`];
        await schedule(timers[0] as string, 3000, offsetMs);
        await schedule(timers[1] as string, 6000, offsetMs);
        setClock(clockFile, step.spec);
        offsetMs = step.offsetMs;
        stepsSeen.push(await brokerClockAt(c, `clock-${index + 1}`, offsetMs));
        await schedule(timers[2] as string, 2000, offsetMs);
        await eventually(
          () => queue.arrivals.has(`job-${index}-held/2`) && queue.arrivals.has(`job-${index}-nacked/2`),
          `the redeliveries of step ${index + 1}`,
          ACK_TIMEOUT_MS + LATE_MS,
        ).catch(() => undefined);
        flag(
          lateness(
            `step ${step.spec}: ack timeout`,
            queue.arrivals.get(`job-${index}-held/1`) as number,
            queue.arrivals.get(`job-${index}-held/2`),
            ACK_TIMEOUT_MS,
          ),
        );
        flag(
          lateness(
            `step ${step.spec}: nack delay`,
            queue.nackedAt.get(`job-${index}-nacked`) as number,
            queue.arrivals.get(`job-${index}-nacked/2`),
            NACK_DELAY_MS,
          ),
        );
        if (index === 0) {
          const silentRemovedMs = await silentRemoved;
          flag(
            lateness(
              `step ${step.spec}: session timeout of a silent member`,
              silentJoinedMs,
              silentRemovedMs,
              SESSION_TIMEOUT_MS,
            ),
          );
          silent.close();
        }
        await eventually(
          () => scheduledBy(timers),
          `the scheduled batches of step ${index + 1}`,
          6000 + LATE_MS,
        ).catch(() => undefined);
        for (const id of timers) {
          const { publishedMs, delayMs } = scheduled.get(id) as { publishedMs: number; delayMs: number };
          flag(
            lateness(
              `step ${step.spec}: scheduled ${id}`,
              publishedMs,
              scheduledArrivals.get(id)?.[0],
              delayMs,
            ),
          );
        }
      }
      publishingLedger = false;
      await ledgerPublishing;

      // Retention runs every MAINTENANCE_INTERVAL_MS; the wall clock is 30 days ahead by now.
      const aged = async () => (await c.describeTopic('aged')).partitions[0];
      await eventually(
        async () => ((await aged())?.startOffset ?? 0) > 0,
        'time retention of the topic kept 7 days',
        retentionCreatedAt + MAINTENANCE_INTERVAL_MS + 20_000 - now(),
      );
      await sleep(2 * MAINTENANCE_INTERVAL_MS); // the other topics' retention ran since
      const retained = new Map<string, { startOffset: number; endOffset: number; readable: number }>();
      for (const topic of Object.keys(retention)) {
        const p = (await c.describeTopic(topic)).partitions[0];
        let readable = 0;
        for (let offset = p?.startOffset ?? 0; offset < (p?.endOffset ?? 0);) {
          const fetched = await c.fetch(topic, 0, offset);
          readable += fetched.events.length;
          offset = fetched.nextOffset;
        }
        retained.set(topic, { startOffset: p?.startOffset ?? -1, endOffset: p?.endOffset ?? -1, readable });
      }

      // Everything settled before a clean restart under the stepped clock (asserted below).
      const settled = await eventually(
        async () =>
          (await c.describeSubscription('workers')).partitions.every((p) => p.committed === p.endOffset) &&
          (await c.describeSubscription('readers')).partitions.every((p) => p.committed === p.endOffset),
        'the queue acked and the group committed to the end',
      ).then(
        () => true,
        () => false,
      );
      const ledgerEnd = (await c.describeTopic('ledger')).partitions[0]?.endOffset ?? 0;
      const deliveriesBefore = { queue: queue.arrivals.size, ledger: ledgerSeen.length };
      await Promise.all([c.close(), workerClient.close(), readerClient.close()]);
      const exited = new Promise((resolve) => broker.server.once('exit', resolve));
      broker.server.kill('SIGTERM');
      await exited;
      const restartedMs = now();
      broker = await serveFaked(dataDir, clockFile);
      const recoveryMs = now() - restartedMs;
      const after = await client(broker, errors);
      const afterQueue: string[] = [];
      const afterLedger: number[] = [];
      await after.join(
        'workers',
        { ack: 'manual' },
        (d) => void afterQueue.push(`${d.event.id} (attempt ${d.attempt})`),
      );
      await after.join('readers', { member: 'reader' }, (d) => void afterLedger.push(d.offset));
      await sleep(ACK_TIMEOUT_MS + 1000);
      const laterEnd = (await after.describeTopic('later')).partitions[0]?.endOffset;
      const ledgerRepeats = ledgerSeen.filter((offset, i) => ledgerSeen.indexOf(offset) !== i);
      const scheduledRepeats = [...scheduledArrivals]
        .filter(([, times]) => times.length > 1)
        .map(([id]) => id);
      await after.close();

      const maxPublishMs = Math.max(...publishMs);
      const kept = retained.get('kept');
      const sized = retained.get('sized');
      const agedAfter = retained.get('aged');
      recordFault({
        fault: 'wall clock stepped 1 h back and 30 days ahead, twice (libfaketime), then a restart',
        runs: STEPS.length,
        acknowledged: RETAINED_EVENTS * 3 + ledgerEnd + queue.arrivals.size,
        lost: RETAINED_EVENTS - (kept?.readable ?? 0) + (RETAINED_EVENTS - (sized?.readable ?? 0)),
        duplicated:
          queue.reappeared.length +
          ledgerRepeats.length +
          scheduledRepeats.length +
          afterQueue.length +
          afterLedger.length,
        recoveryMs: [recoveryMs],
        errors: {
          ...errors,
          ...Object.fromEntries(Object.entries(readerErrors).map(([k, v]) => [`reader ${k}`, v])),
        },
        note:
          `timers off their delay by more than -${EARLY_MS}/+${LATE_MS} ms: ${late.length} (ack timeout, nack delay and ` +
          `${scheduled.size} scheduled batches per step; session of a silent member); durable publishes answered ` +
          `within ${Math.round(maxPublishMs)} ms across the steps; time retention (7 days) deleted ` +
          `${agedAfter?.startOffset ?? 0} of ${RETAINED_EVENTS} events 30 days ahead, as the policy says; ` +
          `no retention and size retention kept ${kept?.readable ?? 0} and ${sized?.readable ?? 0}`,
      });
      console.log(
        `clock jumps: ${late.length} timers off${late.map((fault) => `\n  ${fault}`).join('')}\n` +
          `max durable publish ${Math.round(maxPublishMs)} ms; reader errors ${JSON.stringify(readerErrors)}, ` +
          `assignments ${reassigned}; errors ${JSON.stringify(errors)}; retention ${JSON.stringify([...retained])}`,
      );

      expect(stepsSeen).toEqual(STEPS.map(() => true)); // the broker's clock did step
      expect(late).toEqual([]);
      expect(maxPublishMs).toBeLessThan(1000);
      // The heartbeating member kept its session and its partition through every step.
      expect(readerErrors).toEqual({});
      expect(reassigned).toBe(1);
      expect(settled).toBe(true);
      expect(ledgerSeen.length).toBe(ledgerEnd);
      expect(ledgerRepeats).toEqual([]);
      // Nothing delivered again: not an acked job, a committed event or a delivered scheduled batch.
      expect(queue.reappeared).toEqual([]);
      expect(queue.arrivals.size).toBe(deliveriesBefore.queue);
      expect(deliveriesBefore.queue).toBe(STEPS.length * 6); // 4 jobs a step, 2 of them twice
      expect(scheduledRepeats).toEqual([]);
      expect(laterEnd).toBe(scheduled.size);
      expect(afterQueue).toEqual([]);
      expect(afterLedger).toEqual([]);
      expect(deliveriesBefore.ledger).toBe(ledgerEnd);
      // Retention: by policy only.
      expect(kept).toEqual({ startOffset: 0, endOffset: RETAINED_EVENTS, readable: RETAINED_EVENTS });
      expect(sized).toEqual({ startOffset: 0, endOffset: RETAINED_EVENTS, readable: RETAINED_EVENTS });
      expect(agedAfter?.startOffset).toBeGreaterThan(0);
      expect(agedAfter?.endOffset).toBe(RETAINED_EVENTS);
      expect(Object.keys(errors).filter((name) => name !== 'NOT_CONNECTED')).toEqual([]);
    },
  );
});
