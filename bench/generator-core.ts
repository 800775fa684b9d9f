/**
 * What every load generator of the broker benchmarks shares, whichever broker it drives: Eddy
 * through its SDK (`load-generator.ts`) or a peer through that peer's own Node client
 * (`peers/peer-generator.ts`). A generator is a child process that the benchmark forks; it only
 * differs by its `LoadTarget` (connect, publish one event's data, subscribe, close), so the
 * schedule, the payloads, the histograms and the conversation with the parent are the same code
 * for every broker measured.
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
 * - publisher, closed loop (`rate` null): as fast as the client allows with at most
 *   `inFlight` publishes unresolved; counts acks inside the measured window.
 * - consumer: subscribed to new events before publishing starts; records
 *   now − intended send time of every measured event, and (where the target asks for it) counts
 *   the deliveries of every event, by publisher and place in the schedule, so that the parent can
 *   tell which acked events never arrived and which arrived more than once.
 *
 * Conversation (parent → child / child → parent): `configure` → `ready`,
 * `start` → `result` (a publisher sends it when done; a consumer once it is sent
 * `finish`, or at once for `report`), then `exit`. A consumer answers `progress`
 * with how many events it has received. A publisher sends `tick` about once a second while it
 * runs (acks so far), for the parent's progress line. `failed` reports an error at any point.
 * Latencies are HdrHistograms of microseconds, sent compressed (base64).
 */
import { randomFillSync } from 'node:crypto';
import { build, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';

/** The smallest event the generator can send: 8 bytes of send time, a flag, publisher and place. */
export const EVENT_BYTES_MIN = 16;

/** The schedule of a publisher, whatever it publishes to. */
export interface LoadPublisherSpec {
  readonly role: 'publisher';
  readonly eventBytes: number;
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
  /**
   * Open loop: how often the events that are due go out. From `TIMER_STEP_MS` up, on timer ticks
   * (about a millisecond apart at high rates); below, the generator busy-waits between sends.
   */
  readonly sendIntervalMs: number;
  /**
   * Distinct keys the events cycle through (event i of the schedule, or the i-th publish of the
   * closed loop, gets key `key-<i mod keys>`); 0 publishes without a key.
   */
  readonly keys: number;
  /** What the events' data is made of (`Payloads`). */
  readonly data: PayloadKind;
}

/** The key of each of `keys` distinct keys, made once: a key costs no string per event. */
export function keyNames(keys: number): readonly string[] {
  return Array.from({ length: keys }, (_, i) => `key-${i}`);
}

export interface LoadConsumerSpec {
  readonly role: 'consumer';
}

export type ToGenerator<Spec = unknown> =
  | { readonly type: 'configure'; readonly spec: Spec; readonly deadlineMs: number }
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
   * Where the target counts deliveries: per publisher index, base64 of one byte per event of its
   * schedule (warm-up included): how many times this consumer received it, 255 at most. Else null.
   */
  readonly deliveries: readonly string[] | null;
}

export type FromGenerator =
  | { readonly type: 'ready' }
  | { readonly type: 'progress'; readonly received: number }
  /** Publisher, about once a second while it runs: events acked so far (warm-up included). */
  | { readonly type: 'tick'; readonly acked: number; readonly atEpochMs: number }
  | { readonly type: 'result'; readonly result: PublisherResult | ConsumerResult }
  | { readonly type: 'failed'; readonly message: string };

/** One broker as a generator sees it: the only part of a generator that differs between brokers. */
export interface LoadTarget {
  /**
   * Publishes one event whose data is `data`, with `key` (null: none); resolves once the broker
   * acknowledged it.
   */
  publish(data: Uint8Array, key: string | null): Promise<unknown>;
  /** Whether `error` means the connection is gone for good, so that publishing on would only fail faster. */
  isDisconnected(error: unknown): boolean;
  /** Hands every delivered event's data to `onData`, from events published after it resolves on. */
  subscribe(onData: (data: Uint8Array) => void): Promise<void>;
  /** The consumer counts the deliveries of every event (the parent checks them off). */
  readonly countsDeliveries: boolean;
  close(): Promise<void>;
}

/** How long a generator may take past its schedule to send what it still owes and collect acks. */
const DRAIN_MS_MIN = 5000;
const TICK_INTERVAL_MS = 1000;

/** Latencies in µs up to an hour, 3 significant digits; grows if ever needed. */
export function latencyHistogram(): Histogram {
  return build({ bitBucketSize: 32, numberOfSignificantValueDigits: 3, highestTrackableValue: 3.6e9 });
}

export const epochNow = (): number => performance.timeOrigin + performance.now();
const microseconds = (ms: number): number => Math.max(0, Math.round(ms * 1000));

function send(message: FromGenerator): void {
  process.send?.(message);
}

export function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Resolves at `atMs` on the `performance.now()` clock. */
function sleepUntil(atMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, atMs - performance.now())));
}

/** Random bytes, which no compressor shrinks, or text like a JSON order record, which LZ4 does. */
export const payloadKinds = ['random', 'json'] as const;
export type PayloadKind = (typeof payloadKinds)[number];

/**
 * Event data: events take `eventBytes` windows of a pool of one megabyte in turn, so that no two
 * events of a batch are alike and no event costs a draw. `random` fills the pool with random
 * bytes (the SDK LZ4-compresses large blocks only when that saves bytes: these never do); `json`
 * with order records as JSON text, with numbers from a fixed pseudo-random sequence, which LZ4
 * shrinks about as it does real JSON events.
 */
export class Payloads {
  static readonly #POOL_BYTES = 1 << 20;
  /** Stamped events are cut from slabs this large: one ArrayBuffer per slab, not per event. */
  static readonly #SLAB_BYTES = 1 << 16;
  readonly #pool: Uint8Array;
  readonly #eventBytes: number;
  #offset = 0;
  #slab: Uint8Array;
  #slabView: DataView;
  #slabOffset = 0;

  constructor(eventBytes: number, kind: PayloadKind = 'random') {
    this.#eventBytes = eventBytes;
    const poolBytes = Payloads.#POOL_BYTES + eventBytes;
    this.#pool = kind === 'random' ? randomFillSync(new Uint8Array(poolBytes)) : jsonRecords(poolBytes);
    this.#slab = new Uint8Array(0);
    this.#slabView = new DataView(this.#slab.buffer);
  }

  /** A view into the pool (the client keeps it by reference until it has encoded or written it). */
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

/** `bytes` of JSON order records, one per line; the same bytes in every run. */
function jsonRecords(bytes: number): Uint8Array {
  const statuses = ['paid', 'pending', 'shipped', 'refunded'];
  let seed = 0x2545f491;
  const next = (below: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % below;
  };
  let text = '';
  while (text.length < bytes) {
    const cents = next(100_000);
    text +=
      `{"orderId":"ord-${100000 + next(900000)}","customer":"cust-${1000 + next(9000)}",` +
      `"amount":${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')},"currency":"EUR",` +
      `"status":"${statuses[next(statuses.length)] as string}","items":${1 + next(9)}}\n`;
  }
  return new TextEncoder().encode(text.slice(0, bytes));
}

class Publisher {
  readonly #target: LoadTarget;
  readonly #spec: LoadPublisherSpec;
  #outstanding = 0;
  /** Every ack so far, warm-up included: the progress ticks. */
  #acks = 0;
  #errors = 0;
  #firstError: string | null = null;
  /** The connection is gone (the clients do not reconnect here): publishing on would only fail faster. */
  #disconnected = false;
  /** Called when an outstanding publish settles, to let a waiting loop go on. */
  #wake: (() => void) | null = null;

  constructor(target: LoadTarget, spec: LoadPublisherSpec) {
    this.#target = target;
    this.#spec = spec;
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
    if (this.#target.isDisconnected(error)) this.#disconnected = true;
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

  /** Sends `tick` every second until the returned function is called. */
  #ticking(): () => void {
    const timer = setInterval(
      () => send({ type: 'tick', acked: this.#acks, atEpochMs: epochNow() }),
      TICK_INTERVAL_MS,
    );
    return () => clearInterval(timer);
  }

  /** Closed loop: keeps `inFlight` publishes outstanding for warm-up + duration. */
  async runClosedLoop(startAt: number): Promise<PublisherResult> {
    const spec = this.#spec;
    const target = this.#target;
    const payloads = new Payloads(spec.eventBytes, spec.data);
    const measureFrom = startAt + spec.warmupMs;
    const measureTo = measureFrom + spec.durationMs;
    let acked = 0;
    const onAck = (): void => {
      const now = performance.now();
      if (now >= measureFrom && now < measureTo) acked++;
      this.#acks++;
      this.#settled();
    };
    const onError = (error: unknown): void => this.#failed(error);
    const keys = keyNames(spec.keys);
    let sent = 0;
    await sleepUntil(startAt);
    const stopTicking = this.#ticking();
    while (performance.now() < measureTo && !this.#disconnected) {
      while (this.#outstanding < spec.inFlight) {
        this.#outstanding++;
        const key = keys.length === 0 ? null : (keys[sent++ % keys.length] as string);
        target.publish(payloads.next(), key).then(onAck, onError);
      }
      await this.#someSettled();
    }
    await this.#drain(measureTo + Math.max(DRAIN_MS_MIN, spec.durationMs));
    stopTicking();
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
    const target = this.#target;
    const payloads = new Payloads(spec.eventBytes, spec.data);
    const intervalMs = (1000 * spec.publishers) / totalRate;
    const firstMs = (1000 * spec.index) / totalRate;
    const scheduleMs = spec.warmupMs + spec.durationMs;
    const total = Math.max(0, Math.ceil((scheduleMs - firstMs) / intervalMs));
    // Events from this index on are measured; those before warm the broker, the client and the JIT up.
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
    const keys = keyNames(spec.keys);
    const publishOne = (index: number, intended: number): void => {
      const measured = index >= firstMeasured;
      const data = payloads.stamped(performance.timeOrigin + intended, measured, spec.index, index);
      if (measured) sendLag.recordValue(microseconds(performance.now() - intended));
      this.#outstanding++;
      target.publish(data, keys.length === 0 ? null : (keys[index % keys.length] as string)).then(
        () => {
          if (ackedBitmap !== null)
            ackedBitmap[index >> 3] = (ackedBitmap[index >> 3] ?? 0) | (1 << (index & 7));
          if (measured) {
            lastAck = performance.now();
            latency.recordValue(microseconds(lastAck - intended));
            measuredAcks++;
          }
          this.#acks++;
          this.#settled();
        },
        (error: unknown) => this.#failed(error),
      );
    };
    const stopTicking = this.#ticking();
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
        else if (spec.sendIntervalMs >= TIMER_STEP_MS)
          setTimeout(tick, Math.max(0, intended - performance.now()));
        else waitUntil(Math.max(intended, now + spec.sendIntervalMs), tick);
      };
      setTimeout(tick, Math.max(0, startAt + firstMs - performance.now()));
    });
    await this.#drain(sendUntil + DRAIN_MS_MIN);
    stopTicking();
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

/** Node's timers count whole milliseconds: a shorter wait needs `waitUntil`. */
const TIMER_STEP_MS = 1;
/** How long `waitUntil` spins before it lets the event loop read sockets (acks) again. */
const BUSY_WAIT_SLICE_MS = 0.05;

/**
 * Calls `then` at `atMs` (performance.now()) to within a few µs: a timer for all but the last two
 * timer steps, then busy-waiting in slices between turns of the event loop. It keeps a core busy,
 * which is why the open loop uses it only below `TIMER_STEP_MS`.
 */
export function waitUntil(atMs: number, then: () => void): void {
  const now = performance.now();
  if (now >= atMs) {
    then();
  } else if (atMs - now > 2 * TIMER_STEP_MS) {
    setTimeout(waitUntil, atMs - now - 2 * TIMER_STEP_MS, atMs, then);
  } else {
    const sliceEnd = Math.min(atMs, now + BUSY_WAIT_SLICE_MS);
    while (performance.now() < sliceEnd) {
      // Spinning: a sleep this short would take the scheduler's wake-up latency, tens of µs or more.
    }
    setImmediate(waitUntil, atMs, then);
  }
}

class Consumer {
  readonly #latency = latencyHistogram();
  /** Deliveries of each event by publisher index, then place in its schedule (255 at most); or null. */
  readonly #deliveries: (Uint8Array | undefined)[] | null;
  /** Every event received, warm-up and deliveries again included. */
  received = 0;
  events = 0;
  warmupEvents = 0;
  lastReceiveEpochMs = 0;

  constructor(countDeliveries: boolean) {
    this.#deliveries = countDeliveries ? [] : null;
  }

  readonly onData = (data: Uint8Array): void => {
    const now = epochNow();
    if (data.length < EVENT_BYTES_MIN) return;
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
  };

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

/**
 * The generator's life, driven by the parent over IPC: `open` connects to the broker for the
 * spec of `configure` (and reports connection errors through `fail`). Exits the process at the
 * end (or when the parent goes away); `usage` is printed when the module is run by hand.
 */
export async function runGenerator<Spec extends LoadPublisherSpec | LoadConsumerSpec>(
  usage: string,
  open: (spec: Spec, fail: (error: unknown) => void) => Promise<LoadTarget>,
): Promise<void> {
  if (process.send === undefined) {
    process.stderr.write(`${usage}\n`);
    process.exit(2);
  }
  let target: LoadTarget | null = null;
  let consumer: Consumer | null = null;
  let spec: Spec | null = null;
  const fail = (error: unknown): void => {
    send({ type: 'failed', message: errorText(error) });
    process.exit(1);
  };
  // The parent gone (killed, crashed) means nobody will ever send `exit`.
  process.once('disconnect', () => process.exit(2));
  process.on('message', (message: ToGenerator<Spec>) => {
    switch (message.type) {
      case 'configure': {
        const configured = message.spec;
        spec = configured;
        setTimeout(
          () => fail(new Error(`still running after ${message.deadlineMs} ms`)),
          message.deadlineMs,
        ).unref();
        open(configured, fail)
          .then(async (opened) => {
            target = opened;
            if (configured.role === 'consumer') {
              consumer = new Consumer(opened.countsDeliveries);
              await opened.subscribe(consumer.onData);
            }
            send({ type: 'ready' });
          })
          .catch(fail);
        return;
      }
      case 'start': {
        if (target === null || spec === null || spec.role !== 'publisher') return;
        const publisherSpec: LoadPublisherSpec = spec;
        const publisher = new Publisher(target, publisherSpec);
        const startAt = message.startAtEpochMs - performance.timeOrigin;
        const run =
          publisherSpec.rate === null
            ? publisher.runClosedLoop(startAt)
            : publisher.runOpenLoop(startAt, publisherSpec.rate);
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
        const closing = target === null ? Promise.resolve() : (target as LoadTarget).close();
        const timeout = new Promise((resolve) => setTimeout(resolve, 2000).unref());
        void Promise.race([closing, timeout]).finally(() => process.exit(0));
        return;
      }
    }
  });
}
