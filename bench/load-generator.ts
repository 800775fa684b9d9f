/**
 * The broker benchmark's load generator: a child process (forked by
 * `broker.bench.ts` from its compiled `dist/bench/load-generator.js`) that
 * publishes through the real client SDK, or consumes through it, and reports
 * over IPC. It runs in its own process so that its event loop, its event
 * encoding and its garbage are not the broker's.
 *
 * Roles:
 * - publisher, open loop (`rate` set): events are scheduled on a fixed timeline
 *   at the offered rate; each event's latency runs from its *intended* send time,
 *   so a generator or broker that falls behind is charged for the wait
 *   (no coordinated omission). The intended time (`performance.timeOrigin` +
 *   `performance.now()` of the schedule, ms) travels in the event's first 8 bytes
 *   of data, little-endian float64, and byte 8 says whether the event is measured
 *   (1) or warm-up (0). Bytes 10–11 hold the publisher's index (uint16) and bytes
 *   12–15 the event's place in its schedule (uint32), both little-endian: with the
 *   two, every event of a run has an identity that a consumer can check off.
 * - publisher, closed loop (`rate` null): as fast as the SDK allows with at most
 *   `inFlight` publishes unresolved; counts acks inside the measured window.
 * - consumer: subscribes from `latest` before publishing starts and records
 *   now − intended send time of every measured event.
 * - joined consumer (`join` set): a member of a durable subscription that the
 *   parent created (`client.join`, the SDK's default `ack: 'auto'`: a queue acks
 *   each event after the handler, a stream commits after each batch). It records
 *   latency as a consumer does and also counts the deliveries of every event, by
 *   publisher and place in the schedule, so that the parent can tell which acked
 *   events never arrived and which arrived more than once, across all members.
 *
 * Conversation (parent → child / child → parent): `configure` → `ready`,
 * `start` → `result` (a publisher sends it when done; a consumer once it is sent
 * `finish`, or at once for `report`), then `exit`. A consumer answers `progress`
 * with how many events it has received. `failed` reports an error at any point.
 * Latencies are HdrHistograms of microseconds, sent compressed (base64).
 */
import { randomFillSync } from 'node:crypto';
import { build, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';
import {
  connect,
  isBrokerError,
  type DeliveredEvent,
  type EddyClient,
  type PublishOptions,
} from '../src/client/index.js';

export type AckLevel = NonNullable<PublishOptions['ack']>;

/** The smallest event the generator can send: 8 bytes of send time and 1 measured flag. */
export const EVENT_BYTES_MIN = 16;

export interface PublisherSpec {
  readonly role: 'publisher';
  readonly url: string;
  readonly topic: string;
  readonly eventBytes: number;
  readonly ack: AckLevel;
  /** SDK batching: `connect` options. */
  readonly lingerMs: number;
  readonly maxBatchBytes: number;
  /** Events/s all publishers together offer (open loop), or null: as fast as `inFlight` allows. */
  readonly rate: number | null;
  /** This publisher's place among `publishers`: open-loop schedules interleave. */
  readonly index: number;
  readonly publishers: number;
  /** Most publishes left unresolved at once (events, not batches). */
  readonly inFlight: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  /** Open loop: report which events of the schedule were acked (`PublisherResult.acked`). */
  readonly reportAcked: boolean;
}

export interface ConsumerSpec {
  readonly role: 'consumer';
  readonly url: string;
  readonly topic: string;
  /** Stored batches the broker may send ahead of the handler. */
  readonly credits: number;
  /** The subscription's filter, or null. */
  readonly filter: unknown;
  /** Join this durable subscription as `member` instead of subscribing to `topic` (plain, from `latest`). */
  readonly join: { readonly subscription: string; readonly member: string } | null;
}

export type GeneratorSpec = PublisherSpec | ConsumerSpec;

export type ToGenerator =
  | { readonly type: 'configure'; readonly spec: GeneratorSpec; readonly deadlineMs: number }
  /** Wall-clock ms (`performance.timeOrigin` based) at which publishing starts. */
  | { readonly type: 'start'; readonly startAtEpochMs: number }
  /** Consumer: report once `expectedEvents` measured events arrived, or after `graceMs`. */
  | { readonly type: 'finish'; readonly expectedEvents: number; readonly graceMs: number }
  /** Consumer: report now and go on consuming (the parent may ask again for events still missing). */
  | { readonly type: 'report' }
  /** Consumer: say how many events (warm-up included, every delivery) have arrived so far. */
  | { readonly type: 'progress' }
  | { readonly type: 'exit' };

export interface PublisherResult {
  readonly role: 'publisher';
  /** Events acknowledged inside the measured window (closed loop) or measured events acknowledged (open loop). */
  readonly events: number;
  /** Open loop: measured events on the schedule, and those never sent because the generator ran out of time. */
  readonly scheduled: number;
  readonly unsent: number;
  readonly errors: number;
  readonly firstError: string | null;
  /** Open loop: epoch ms of the last measured ack. */
  readonly lastAckEpochMs: number;
  /** Open loop: publish-ack latency from the intended send time, µs. */
  readonly latency: string | null;
  /** Open loop: how late the generator itself called `publish`, µs. */
  readonly sendLag: string | null;
  /** With `reportAcked`: which events of the schedule, warm-up included, the broker acked. */
  readonly acked: AckedEvents | null;
}

/** Events of one publisher's schedule: bit i (of byte i >> 3, bit i & 7) is event i. */
export interface AckedEvents {
  /** Base64 of the bitmap. */
  readonly bitmap: string;
  /** Events on the schedule, warm-up included. */
  readonly total: number;
  /** Events before this one are warm-up. */
  readonly firstMeasured: number;
}

export interface ConsumerResult {
  readonly role: 'consumer';
  readonly events: number;
  readonly warmupEvents: number;
  readonly lastReceiveEpochMs: number;
  /** Publish-to-consume latency from the intended send time, µs. */
  readonly latency: string;
  /**
   * Joined consumers: per publisher index, base64 of one byte per event of its schedule (warm-up
   * included): how many times this consumer received it, 255 at most. Null for a plain consumer.
   */
  readonly deliveries: readonly string[] | null;
}

export type FromGenerator =
  | { readonly type: 'ready' }
  | { readonly type: 'progress'; readonly received: number }
  | { readonly type: 'result'; readonly result: PublisherResult | ConsumerResult }
  | { readonly type: 'failed'; readonly message: string };

const EVENT_TYPE = 'dev.eddy.bench';
const EVENT_SOURCE = '/eddy/bench';
/** How long a generator may take past its schedule to send what it still owes and collect acks. */
const DRAIN_MS_MIN = 5000;

/** Latencies in µs up to an hour, 3 significant digits; grows if ever needed. */
export function latencyHistogram(): Histogram {
  return build({ bitBucketSize: 32, numberOfSignificantValueDigits: 3, highestTrackableValue: 3.6e9 });
}

const epochNow = (): number => performance.timeOrigin + performance.now();
const microseconds = (ms: number): number => Math.max(0, Math.round(ms * 1000));

function send(message: FromGenerator): void {
  process.send?.(message);
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Resolves at `atMs` on the `performance.now()` clock. */
function sleepUntil(atMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, atMs - performance.now())));
}

/**
 * Incompressible event data: events take `eventBytes` windows of one random
 * megabyte in turn, so no two events of a batch are alike (the SDK LZ4-compresses
 * large blocks when that saves bytes) and no event costs a random draw.
 */
class Payloads {
  static readonly #POOL_BYTES = 1 << 20;
  /** Stamped events are cut from slabs this large: one ArrayBuffer per slab, not per event. */
  static readonly #SLAB_BYTES = 1 << 16;
  readonly #pool: Uint8Array;
  readonly #eventBytes: number;
  #offset = 0;
  #slab: Uint8Array;
  #slabView: DataView;
  #slabOffset = 0;

  constructor(eventBytes: number) {
    this.#eventBytes = eventBytes;
    this.#pool = randomFillSync(new Uint8Array(Payloads.#POOL_BYTES + eventBytes));
    this.#slab = new Uint8Array(0);
    this.#slabView = new DataView(this.#slab.buffer);
  }

  /** A view into the pool (createEvent keeps it by reference, the SDK's encoder copies it). */
  next(): Uint8Array {
    const start = this.#offset;
    this.#offset = (start + 4093) % Payloads.#POOL_BYTES; // a prime stride: windows do not repeat soon
    return this.#pool.subarray(start, start + this.#eventBytes);
  }

  /**
   * Event data of its own whose first 8 bytes are `sentEpochMs` (float64, little-endian), byte 8
   * the measured flag, bytes 10–11 `publisher` and 12–15 `sequence`. Cut from a slab no other
   * event shares: a fresh ArrayBuffer per event would cost the generator more than the SDK does
   * (allocation and GC of backing stores).
   */
  stamped(sentEpochMs: number, measured: boolean, publisher: number, sequence: number): Uint8Array {
    const bytes = this.#eventBytes;
    if (this.#slabOffset + bytes > this.#slab.length) {
      this.#slab = new Uint8Array(Math.max(Payloads.#SLAB_BYTES, bytes));
      this.#slabView = new DataView(this.#slab.buffer);
      this.#slabOffset = 0;
    }
    const start = this.#slabOffset;
    this.#slabOffset = start + bytes;
    const data = this.#slab.subarray(start, start + bytes);
    data.set(this.next());
    this.#slabView.setFloat64(start, sentEpochMs, true);
    data[8] = measured ? 1 : 0;
    this.#slabView.setUint16(start + 10, publisher, true);
    this.#slabView.setUint32(start + 12, sequence, true);
    return data;
  }
}

class Publisher {
  readonly #client: EddyClient;
  readonly #spec: PublisherSpec;
  readonly #options: PublishOptions;
  #outstanding = 0;
  #errors = 0;
  #firstError: string | null = null;
  /** The connection is gone (the SDK does not reconnect here): publishing on would only fail faster. */
  #disconnected = false;
  /** Called when an outstanding publish settles, to let a waiting loop go on. */
  #wake: (() => void) | null = null;

  constructor(client: EddyClient, spec: PublisherSpec) {
    this.#client = client;
    this.#spec = spec;
    this.#options = { ack: spec.ack };
  }

  #settled(): void {
    this.#outstanding--;
    const wake = this.#wake;
    if (wake !== null) {
      this.#wake = null;
      wake();
    }
  }

  #failed(error: unknown): void {
    this.#errors++;
    this.#firstError ??= errorText(error);
    if (isBrokerError(error, 'NOT_CONNECTED')) this.#disconnected = true;
    this.#settled();
  }

  /** Resolves once a publish settles (or at once when none is outstanding). */
  #someSettled(): Promise<void> {
    if (this.#outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => (this.#wake = resolve));
  }

  async #drain(deadline: number): Promise<void> {
    while (this.#outstanding > 0 && performance.now() < deadline) {
      await Promise.race([this.#someSettled(), sleepUntil(deadline)]);
    }
  }

  /** Closed loop: keeps `inFlight` publishes outstanding for warm-up + duration. */
  async runClosedLoop(startAt: number): Promise<PublisherResult> {
    const spec = this.#spec;
    const client = this.#client;
    const options = this.#options;
    const payloads = new Payloads(spec.eventBytes);
    const measureFrom = startAt + spec.warmupMs;
    const measureTo = measureFrom + spec.durationMs;
    let acked = 0;
    const onAck = (): void => {
      const now = performance.now();
      if (now >= measureFrom && now < measureTo) acked++;
      this.#settled();
    };
    const onError = (error: unknown): void => this.#failed(error);
    await sleepUntil(startAt);
    while (performance.now() < measureTo && !this.#disconnected) {
      while (this.#outstanding < spec.inFlight) {
        this.#outstanding++;
        client
          .publish(spec.topic, { type: EVENT_TYPE, source: EVENT_SOURCE, data: payloads.next() }, options)
          .then(onAck, onError);
      }
      await this.#someSettled();
    }
    await this.#drain(measureTo + Math.max(DRAIN_MS_MIN, spec.durationMs));
    return {
      role: 'publisher',
      events: acked,
      scheduled: 0,
      unsent: 0,
      errors: this.#errors,
      firstError: this.#firstError,
      lastAckEpochMs: 0,
      latency: null,
      sendLag: null,
      acked: null,
    };
  }

  /**
   * Open loop: event i of this publisher is due at startAt + (i × publishers + index) / rate,
   * whatever happened before. A timer tick sends every event that is due; when the generator
   * or the broker falls behind, events go late but keep their intended time.
   */
  async runOpenLoop(startAt: number, totalRate: number): Promise<PublisherResult> {
    const spec = this.#spec;
    const client = this.#client;
    const options = this.#options;
    const payloads = new Payloads(spec.eventBytes);
    const intervalMs = (1000 * spec.publishers) / totalRate;
    const firstMs = (1000 * spec.index) / totalRate;
    const scheduleMs = spec.warmupMs + spec.durationMs;
    const total = Math.max(0, Math.ceil((scheduleMs - firstMs) / intervalMs));
    // Events from this index on are measured; those before warm the broker, the SDK and the JIT up.
    const firstMeasured = Math.min(total, Math.max(0, Math.ceil((spec.warmupMs - firstMs) / intervalMs)));
    // Open loop up to one second of events outstanding: a bound on memory, not a pacing device.
    const outstandingMax = Math.max(spec.inFlight, Math.ceil(totalRate / spec.publishers));
    const sendUntil = startAt + scheduleMs + Math.max(DRAIN_MS_MIN, spec.durationMs);
    const latency = latencyHistogram();
    const sendLag = latencyHistogram();
    const ackedBitmap = spec.reportAcked ? new Uint8Array(Math.ceil(total / 8)) : null;
    let measuredAcks = 0;
    let lastAck = 0;
    let next = 0;
    const publishOne = (index: number, intended: number): void => {
      const measured = index >= firstMeasured;
      const data = payloads.stamped(performance.timeOrigin + intended, measured, spec.index, index);
      if (measured) sendLag.recordValue(microseconds(performance.now() - intended));
      this.#outstanding++;
      client.publish(spec.topic, { type: EVENT_TYPE, source: EVENT_SOURCE, data }, options).then(
        () => {
          if (ackedBitmap !== null)
            ackedBitmap[index >> 3] = (ackedBitmap[index >> 3] ?? 0) | (1 << (index & 7));
          if (measured) {
            lastAck = performance.now();
            latency.recordValue(microseconds(lastAck - intended));
            measuredAcks++;
          }
          this.#settled();
        },
        (error: unknown) => this.#failed(error),
      );
    };
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const now = performance.now();
        let intended = startAt + firstMs + next * intervalMs;
        while (next < total && intended <= now && this.#outstanding < outstandingMax) {
          publishOne(next, intended);
          next++;
          intended = startAt + firstMs + next * intervalMs;
        }
        if (next >= total || now >= sendUntil || this.#disconnected) resolve();
        else setTimeout(tick, Math.max(0, intended - performance.now()));
      };
      setTimeout(tick, Math.max(0, startAt + firstMs - performance.now()));
    });
    await this.#drain(sendUntil + DRAIN_MS_MIN);
    return {
      role: 'publisher',
      events: measuredAcks,
      scheduled: total - firstMeasured,
      unsent: total - Math.max(next, firstMeasured),
      errors: this.#errors,
      firstError: this.#firstError,
      lastAckEpochMs: lastAck === 0 ? 0 : performance.timeOrigin + lastAck,
      latency: encodeIntoCompressedBase64(latency),
      sendLag: encodeIntoCompressedBase64(sendLag),
      acked:
        ackedBitmap === null
          ? null
          : { bitmap: Buffer.from(ackedBitmap).toString('base64'), total, firstMeasured },
    };
  }
}

class Consumer {
  readonly #latency = latencyHistogram();
  /** Joined: deliveries of each event by publisher index, then place in its schedule (255 at most); else null. */
  readonly #deliveries: (Uint8Array | undefined)[] | null;
  /** Every event received, warm-up and deliveries again included. */
  received = 0;
  events = 0;
  warmupEvents = 0;
  lastReceiveEpochMs = 0;

  constructor(countDeliveries: boolean) {
    this.#deliveries = countDeliveries ? [] : null;
  }

  async subscribe(client: EddyClient, spec: ConsumerSpec): Promise<void> {
    const onEvent = ({ event }: DeliveredEvent): void => this.#received(event.data);
    if (spec.join !== null) {
      // `ack` left at the SDK's default, `auto`: what a user gets without asking.
      await client.join(spec.join.subscription, { member: spec.join.member, credits: spec.credits }, onEvent);
      return;
    }
    const filter = spec.filter === null ? {} : { filter: spec.filter };
    await client.subscribe(spec.topic, { from: 'latest', credits: spec.credits, ...filter }, onEvent);
  }

  #received(data: Uint8Array | undefined): void {
    const now = epochNow();
    if (data === undefined || data.length < EVENT_BYTES_MIN) return;
    this.received++;
    const view = new DataView(data.buffer, data.byteOffset, EVENT_BYTES_MIN);
    if (this.#deliveries !== null) this.#count(view.getUint16(10, true), view.getUint32(12, true));
    if (data[8] !== 1) {
      this.warmupEvents++;
      return;
    }
    this.#latency.recordValue(microseconds(now - view.getFloat64(0, true)));
    this.events++;
    this.lastReceiveEpochMs = now;
  }

  #count(publisher: number, sequence: number): void {
    const deliveries = this.#deliveries as (Uint8Array | undefined)[];
    let counts = deliveries[publisher];
    if (counts === undefined || sequence >= counts.length) {
      const grown = new Uint8Array(Math.max(1 << 16, 2 * (sequence + 1)));
      if (counts !== undefined) grown.set(counts);
      deliveries[publisher] = counts = grown;
    }
    const count = counts[sequence] ?? 0;
    if (count < 255) counts[sequence] = count + 1;
  }

  async finish(expectedEvents: number, graceMs: number): Promise<ConsumerResult> {
    const deadline = performance.now() + graceMs;
    while (this.events < expectedEvents && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return this.report();
  }

  report(): ConsumerResult {
    const deliveries = this.#deliveries;
    return {
      role: 'consumer',
      events: this.events,
      warmupEvents: this.warmupEvents,
      lastReceiveEpochMs: this.lastReceiveEpochMs,
      latency: encodeIntoCompressedBase64(this.#latency),
      deliveries:
        deliveries === null
          ? null
          : Array.from(deliveries, (counts) =>
              counts === undefined ? '' : Buffer.from(counts).toString('base64'),
            ),
    };
  }
}

async function main(): Promise<void> {
  let client: EddyClient | null = null;
  let consumer: Consumer | null = null;
  let spec: GeneratorSpec | null = null;
  const fail = (error: unknown): void => {
    send({ type: 'failed', message: errorText(error) });
    process.exit(1);
  };
  // The parent gone (killed, crashed) means nobody will ever send `exit`.
  process.once('disconnect', () => process.exit(2));
  process.on('message', (message: ToGenerator) => {
    switch (message.type) {
      case 'configure': {
        const configured = message.spec;
        spec = configured;
        setTimeout(
          () => fail(new Error(`still running after ${message.deadlineMs} ms`)),
          message.deadlineMs,
        ).unref();
        connect(configured.url, {
          clientName: `eddy-bench-${configured.role}`,
          ...(configured.role === 'publisher'
            ? { lingerMs: configured.lingerMs, maxBatchBytes: configured.maxBatchBytes }
            : {}),
          reconnectMaxDelayMs: 0,
        })
          .then(async (connected) => {
            client = connected;
            connected.onError = (error) => fail(error);
            if (configured.role === 'consumer') {
              consumer = new Consumer(configured.join !== null);
              await consumer.subscribe(connected, configured);
            }
            send({ type: 'ready' });
          })
          .catch(fail);
        return;
      }
      case 'start': {
        if (client === null || spec === null || spec.role !== 'publisher') return;
        const publisher = new Publisher(client, spec);
        const startAt = message.startAtEpochMs - performance.timeOrigin;
        const run =
          spec.rate === null ? publisher.runClosedLoop(startAt) : publisher.runOpenLoop(startAt, spec.rate);
        run.then((result) => send({ type: 'result', result }), fail);
        return;
      }
      case 'finish':
        consumer
          ?.finish(message.expectedEvents, message.graceMs)
          .then((result) => send({ type: 'result', result }), fail);
        return;
      case 'report':
        if (consumer !== null) send({ type: 'result', result: consumer.report() });
        return;
      case 'progress':
        if (consumer !== null) send({ type: 'progress', received: consumer.received });
        return;
      case 'exit': {
        const closing = client === null ? Promise.resolve() : (client as EddyClient).close();
        const timeout = new Promise((resolve) => setTimeout(resolve, 2000).unref());
        void Promise.race([closing, timeout]).finally(() => process.exit(0));
        return;
      }
    }
  });
}

if (process.send === undefined) {
  process.stderr.write(
    'load-generator.js is forked by the broker benchmark (eddy bench publish|e2e|group)\n',
  );
  process.exit(2);
}
await main();
