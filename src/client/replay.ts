/**
 * Replay: hands a bounded range of a topic to a handler, exactly once and in
 * offset order per partition, at most `ratePerSecond` events a second, with
 * progress reports, and with every hole or step back in the offsets reported.
 *
 * - Reading is by Fetch (whole stored batches, zero-copy on the broker), one
 *   partition after another in the order given, with the next fetch of a
 *   partition in flight while the handler works through the current one.
 * - The range is fixed when the replay starts: `from` (default `earliest`)
 *   and `to` (default the partition's end offset at that moment, so events
 *   published meanwhile are not replayed) resolve to offsets per partition.
 *   A replay never waits for events that are not stored yet: `to` is capped
 *   at the end seen at the start.
 * - Times resolve on the client, from the append time in each stored batch's
 *   header, by binary search with one-batch fetches (O(log n) round trips): the
 *   protocol has no time → offset lookup (Subscribe resolves a time but does not
 *   say to what), and this adds none. The result is the first batch appended at
 *   or after the time, as the broker's own lookup gives, provided append times
 *   do not go backwards (they come from the broker's clock).
 * - Offsets are gap-free per partition, except where retention removed the
 *   oldest segments (`truncated`: the range starts, or moves on, at the
 *   partition's new start offset) or compaction removed superseded batches
 *   (`gap`: the broker offers no compaction setting on topics yet, so a client
 *   cannot tell a compacted topic from a damaged log and reports every hole).
 *   A lower offset than expected (`reorder`) is reported and not handed on, so
 *   the handler never sees an offset twice or out of order.
 */
import { BrokerError, isBrokerError, type TopicDescription } from '../protocol/index.js';
import type { DeliveredEvent, FetchResult } from './client.js';

/** Where a replay starts, per partition. */
export type ReplayFrom = 'earliest' | { readonly offset: number } | { readonly time: Date | number };

/** Where a replay stops (exclusive), per partition. */
export type ReplayTo = 'end-at-start' | { readonly offset: number } | { readonly time: Date | number };

export type ReplayHandler = (delivered: DeliveredEvent) => void | Promise<void>;

export interface ReplayOptions {
  /** Default `earliest`. An offset below the partition's start is reported `truncated` and read from the start. */
  readonly from?: ReplayFrom;
  /**
   * Default `end-at-start`: each partition's end offset when the replay starts.
   * `{ offset }` is exclusive; `{ time }` stops before the first batch appended
   * at or after it. Either is capped at the end offset seen at the start.
   */
  readonly to?: ReplayTo;
  /** Default: every partition, in ascending order. */
  readonly partitions?: readonly number[];
  /** Most events handed to the handler per second (a token bucket). Default: no limit. */
  readonly ratePerSecond?: number;
  /** With `ratePerSecond`: events that may go at once after a pause. Default `ceil(ratePerSecond / 20)` (50 ms worth). */
  readonly burst?: number;
  /** Called at most every `progressIntervalMs` while replaying, and once at the end. */
  readonly onProgress?: (progress: ReplayProgress) => void;
  /** Default 1,000. */
  readonly progressIntervalMs?: number;
  /** Called for each gap, step back or truncation seen in the offsets. */
  readonly onAnomaly?: (anomaly: OffsetAnomaly) => void;
  /** Bytes per Fetch (the broker returns at least one whole batch). Default 1 MiB. */
  readonly maxBytes?: number;
  /** Stops the replay; it then resolves with `aborted: true` and where each partition got to. */
  readonly signal?: AbortSignal;
}

export interface ReplayPartition {
  readonly partition: number;
  /** First offset of the range. */
  readonly fromOffset: number;
  /** End of the range, exclusive. */
  readonly toOffset: number;
  /** Offsets below this are done: handed to the handler, or found missing. `toOffset` once complete. */
  readonly nextOffset: number;
}

export interface ReplayProgress {
  /** Offsets of the range done (handed to the handler, or found missing): Σ (nextOffset − fromOffset). */
  readonly done: number;
  /** `total − done`. */
  readonly remaining: number;
  /** Offsets in the range, fixed at the start: Σ (toOffset − fromOffset). */
  readonly total: number;
  readonly partitions: readonly ReplayPartition[];
}

/**
 * Something other than the next offset came: `expected` is the offset that
 * should have, `got` the one that did (for `truncated`, the partition's start).
 */
export interface OffsetAnomaly {
  /** `truncated`: retention removed `[expected, got)`. `gap`: `[expected, got)` is missing mid-log. `reorder`: `got` < `expected`. */
  readonly kind: 'truncated' | 'gap' | 'reorder';
  readonly topic: string;
  readonly partition: number;
  readonly expected: number;
  readonly got: number;
}

export interface ReplayResult extends ReplayProgress {
  /** Events handed to the handler. */
  readonly events: number;
  /** Anomalies seen, by kind. */
  readonly anomalies: { readonly truncated: number; readonly gap: number; readonly reorder: number };
  /** Stopped by `signal` before the end of the range. */
  readonly aborted: boolean;
  readonly elapsedMs: number;
}

/** What a replay needs from the client. */
export interface ReplayReader {
  describeTopic(name: string): Promise<TopicDescription>;
  fetch(topic: string, partition: number, offset: number, maxBytes: number): Promise<FetchResult>;
}

// ---------------------------------------------------------------------------
// The offset check

/**
 * What `got` after `expected` means, or null when it is the expected offset.
 * `logStartOffset` is the partition's first stored offset: a hole below it is
 * retention's doing, not a gap.
 */
export function classifyOffset(
  expected: number,
  got: number,
  logStartOffset: number,
): OffsetAnomaly['kind'] | null {
  if (got === expected) return null;
  if (got < expected) return 'reorder';
  return expected < logStartOffset && got <= logStartOffset ? 'truncated' : 'gap';
}

/** The offsets of one partition, checked to be consecutive and increasing. */
export class OffsetCheck {
  readonly topic: string;
  readonly partition: number;
  #expected: number;

  constructor(topic: string, partition: number, expected: number) {
    this.topic = topic;
    this.partition = partition;
    this.#expected = expected;
  }

  /** The next offset due. */
  get expected(): number {
    return this.#expected;
  }

  /**
   * An event at `offset` arrived. It is to be handed on unless it is below the
   * expected offset (`reorder`); a higher one is a `gap` (or `truncated`).
   * Nothing changes until `passed`: an event not handed on is still due.
   */
  observe(offset: number, logStartOffset: number): { deliver: boolean; anomaly: OffsetAnomaly | null } {
    const kind = classifyOffset(this.#expected, offset, logStartOffset);
    return { deliver: kind !== 'reorder', anomaly: kind === null ? null : this.#anomaly(kind, offset) };
  }

  /** The event at `offset`, which `observe` said to hand on, was handled: the next offset is due. */
  passed(offset: number): void {
    if (offset < this.#expected) throw new RangeError(`offset ${offset} is below ${this.#expected}`);
    this.#expected = offset + 1;
  }

  /** Nothing exists below `offset` up to it (retention moved the start, or the range ended in a hole). */
  skipTo(offset: number, logStartOffset: number): OffsetAnomaly | null {
    if (offset <= this.#expected) return null;
    const kind = classifyOffset(this.#expected, offset, logStartOffset);
    const anomaly = kind === null ? null : this.#anomaly(kind, offset);
    this.#expected = offset;
    return anomaly;
  }

  #anomaly(kind: OffsetAnomaly['kind'], got: number): OffsetAnomaly {
    return { kind, topic: this.topic, partition: this.partition, expected: this.#expected, got };
  }
}

// ---------------------------------------------------------------------------
// The rate limit

/**
 * A token bucket: `ratePerSecond` tokens a second, holding at most `burst`,
 * full at the start. Over any window of W seconds at most `burst + rate × W`
 * events are taken.
 */
export class TokenBucket {
  readonly #ratePerMs: number;
  readonly #burst: number;
  #tokens: number;
  #lastMs: number;

  constructor(ratePerSecond: number, burst: number, nowMs: number) {
    if (!Number.isFinite(ratePerSecond) || ratePerSecond <= 0)
      throw new RangeError('ratePerSecond must be a positive number');
    if (!Number.isSafeInteger(burst) || burst < 1) throw new RangeError('burst must be a positive integer');
    this.#ratePerMs = ratePerSecond / 1000;
    this.#burst = burst;
    this.#tokens = burst;
    this.#lastMs = nowMs;
  }

  /** Takes a token and returns 0, or returns how many ms to wait before trying again. */
  take(nowMs: number): number {
    this.#tokens = Math.min(this.#burst, this.#tokens + Math.max(0, nowMs - this.#lastMs) * this.#ratePerMs);
    this.#lastMs = Math.max(this.#lastMs, nowMs);
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return (1 - this.#tokens) / this.#ratePerMs;
  }
}

// ---------------------------------------------------------------------------
// The replay

interface Settings {
  readonly from: ReplayFrom;
  readonly to: ReplayTo;
  readonly partitions: readonly number[] | null;
  readonly ratePerSecond: number | null;
  readonly burst: number;
  readonly onProgress: ((progress: ReplayProgress) => void) | null;
  readonly progressIntervalMs: number;
  readonly onAnomaly: ((anomaly: OffsetAnomaly) => void) | null;
  readonly maxBytes: number;
  readonly signal: AbortSignal | null;
}

interface PartitionState {
  readonly partition: number;
  readonly fromOffset: number;
  readonly toOffset: number;
  readonly check: OffsetCheck;
}

/** A fetch, or the partition's new start offset when retention removed the offset asked for. */
type Fetched = { readonly result: FetchResult } | { readonly truncatedTo: number };

/** Offsets and times below 2^53 halve at most 53 times; anything more is a broken invariant. */
const PROBES_MAX = 64;

function checkPosition(name: string, position: unknown, allowed: string): void {
  if (position === allowed) return;
  if (typeof position === 'object' && position !== null) {
    if ('offset' in position) {
      const offset = (position as { offset: unknown }).offset;
      if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0)
        throw new RangeError(`${name}.offset must be a non-negative integer`);
      return;
    }
    if ('time' in position) {
      const time = (position as { time: unknown }).time;
      const ms = time instanceof Date ? time.getTime() : time;
      if (typeof ms !== 'number' || !Number.isFinite(ms))
        throw new RangeError(`${name}.time must be a valid Date or a number of ms`);
      return;
    }
  }
  throw new TypeError(`${name} must be '${allowed}', { offset } or { time }`);
}

function resolveSettings(options: ReplayOptions): Settings {
  const from = options.from ?? 'earliest';
  const to = options.to ?? 'end-at-start';
  checkPosition('from', from, 'earliest');
  checkPosition('to', to, 'end-at-start');
  const partitions = options.partitions ?? null;
  if (partitions !== null) {
    if (partitions.length === 0) throw new RangeError('partitions must not be empty');
    for (const partition of partitions)
      if (!Number.isSafeInteger(partition) || partition < 0)
        throw new RangeError(`partitions must be non-negative integers, got ${partition}`);
    if (new Set(partitions).size !== partitions.length) throw new RangeError('partitions must be distinct');
  }
  const ratePerSecond = options.ratePerSecond ?? null;
  if (ratePerSecond !== null && (!Number.isFinite(ratePerSecond) || ratePerSecond <= 0))
    throw new RangeError('ratePerSecond must be a positive number');
  const burst = options.burst ?? Math.ceil((ratePerSecond ?? 20) / 20);
  if (!Number.isSafeInteger(burst) || burst < 1) throw new RangeError('burst must be a positive integer');
  const progressIntervalMs = options.progressIntervalMs ?? 1000;
  if (!Number.isFinite(progressIntervalMs) || progressIntervalMs < 0)
    throw new RangeError('progressIntervalMs must be >= 0');
  const maxBytes = options.maxBytes ?? 1024 * 1024;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1)
    throw new RangeError('maxBytes must be a positive integer');
  return {
    from,
    to,
    partitions,
    ratePerSecond,
    burst,
    onProgress: options.onProgress ?? null,
    progressIntervalMs,
    onAnomaly: options.onAnomaly ?? null,
    maxBytes,
    signal: options.signal ?? null,
  };
}

const timeOf = (position: { readonly time: Date | number }): number =>
  Math.ceil(position.time instanceof Date ? position.time.getTime() : position.time);

/**
 * Hands the events of a range of `topic` to `handler`, one at a time (a
 * returned promise is awaited), in offset order per partition. Resolves once
 * the range is done or `signal` aborts it; rejects with the handler's error if
 * it throws (nothing after that event is handed on). Invalid options throw
 * synchronously.
 */
export function replay(
  reader: ReplayReader,
  topic: string,
  options: ReplayOptions,
  handler: ReplayHandler,
): Promise<ReplayResult> {
  if (typeof handler !== 'function') throw new TypeError('handler must be a function');
  return new Replay(reader, topic, resolveSettings(options), handler).run();
}

class Replay {
  readonly #reader: ReplayReader;
  readonly #topic: string;
  readonly #settings: Settings;
  readonly #handler: ReplayHandler;
  readonly #startedMs = performance.now();
  readonly #bucket: TokenBucket | null;
  #states: PartitionState[] = [];
  #events = 0;
  #anomalies = { truncated: 0, gap: 0, reorder: 0 };
  #lastReportMs: number;

  constructor(reader: ReplayReader, topic: string, settings: Settings, handler: ReplayHandler) {
    this.#reader = reader;
    this.#topic = topic;
    this.#settings = settings;
    this.#handler = handler;
    this.#lastReportMs = this.#startedMs;
    this.#bucket =
      settings.ratePerSecond === null
        ? null
        : new TokenBucket(settings.ratePerSecond, settings.burst, this.#startedMs);
  }

  get #aborted(): boolean {
    return this.#settings.signal?.aborted === true;
  }

  async run(): Promise<ReplayResult> {
    await this.#plan();
    try {
      for (const state of this.#states) {
        if (this.#aborted) break;
        await this.#replayPartition(state);
      }
    } finally {
      this.#settings.onProgress?.(this.#progress());
    }
    return {
      ...this.#progress(),
      events: this.#events,
      anomalies: { ...this.#anomalies },
      aborted: this.#aborted && this.#states.some((state) => state.check.expected < state.toOffset),
      elapsedMs: performance.now() - this.#startedMs,
    };
  }

  /** Fixes the range of each partition from the offsets as they are now. */
  async #plan(): Promise<void> {
    const description = await this.#reader.describeTopic(this.#topic);
    const byPartition = new Map(description.partitions.map((p) => [p.partition, p]));
    const wanted = this.#settings.partitions ?? [...byPartition.keys()].sort((a, b) => a - b);
    for (const partition of wanted) {
      const offsets = byPartition.get(partition);
      if (offsets === undefined)
        throw new BrokerError(
          'PARTITION_NOT_FOUND',
          `topic "${this.#topic}" has no partition ${partition} (it has ${byPartition.size})`,
        );
      const { startOffset, endOffset } = offsets;
      const { from, to } = this.#settings;
      let fromOffset: number;
      if (from === 'earliest') fromOffset = startOffset;
      else if ('offset' in from) fromOffset = Math.min(from.offset, endOffset);
      else fromOffset = await this.#offsetForTime(partition, startOffset, endOffset, timeOf(from));
      const check = new OffsetCheck(this.#topic, partition, fromOffset);
      // Retention removed the start of the range before it could be read.
      if (fromOffset < startOffset) this.#report(check.skipTo(startOffset, startOffset));
      fromOffset = check.expected;
      let toOffset: number;
      if (to === 'end-at-start') toOffset = endOffset;
      else if ('offset' in to) toOffset = Math.min(to.offset, endOffset);
      else toOffset = await this.#offsetForTime(partition, fromOffset, endOffset, timeOf(to));
      this.#states.push({ partition, fromOffset, toOffset: Math.max(fromOffset, toOffset), check });
    }
  }

  /**
   * The first offset in [low, high) of a batch appended at or after `timeMs`,
   * or `high` if there is none: a binary search reading one batch per probe.
   */
  async #offsetForTime(partition: number, low: number, high: number, timeMs: number): Promise<number> {
    let found = high;
    for (let probes = 0; low < high; probes++) {
      if (probes >= PROBES_MAX)
        throw new BrokerError('INTERNAL', `time lookup in ${this.#topic}[${partition}] did not converge`);
      const middle = low + Math.floor((high - low) / 2);
      const fetched = await this.#fetch(partition, middle, 1);
      if ('truncatedTo' in fetched) {
        low = Math.max(low, fetched.truncatedTo);
        continue;
      }
      const batch = fetched.result.batches[0];
      if (batch === undefined) {
        high = middle;
        continue;
      }
      if (batch.timestampMs >= timeMs) {
        found = Math.min(found, Math.max(low, batch.baseOffset));
        high = Math.min(middle, batch.baseOffset);
      } else {
        low = Math.max(middle + 1, batch.baseOffset + batch.recordCount);
      }
    }
    // Offsets below `low` are in batches appended before `timeMs`; none lie between `low` and `found`.
    return found;
  }

  /** Fetches from `offset`; retention having removed it comes back as the partition's new start. */
  async #fetch(partition: number, offset: number, maxBytes: number): Promise<Fetched> {
    try {
      return { result: await this.#reader.fetch(this.#topic, partition, offset, maxBytes) };
    } catch (error) {
      if (!isBrokerError(error, 'OFFSET_OUT_OF_RANGE')) throw error;
      const now = await this.#reader.describeTopic(this.#topic);
      const startOffset = now.partitions.find((p) => p.partition === partition)?.startOffset;
      if (startOffset === undefined || startOffset <= offset) throw error;
      return { truncatedTo: startOffset };
    }
  }

  async #replayPartition(state: PartitionState): Promise<void> {
    const { partition, toOffset, check } = state;
    const fetchFrom = (offset: number): Promise<Fetched> => {
      const pending = this.#fetch(partition, offset, this.#settings.maxBytes);
      pending.catch(() => undefined); // awaited below, unless the replay stops first
      return pending;
    };
    let position = check.expected;
    let pending: Promise<Fetched> | null = position < toOffset ? fetchFrom(position) : null;
    while (pending !== null) {
      const fetched = await pending;
      pending = null;
      if ('truncatedTo' in fetched) {
        const skipped = check.skipTo(Math.min(fetched.truncatedTo, toOffset), fetched.truncatedTo);
        this.#report(skipped, fetched.truncatedTo);
        position = fetched.truncatedTo;
        if (position < toOffset) pending = fetchFrom(position);
        continue;
      }
      const { result } = fetched;
      if (result.nextOffset <= position && result.events.length === 0)
        throw new BrokerError(
          'INTERNAL',
          `fetch at ${position} of ${this.#topic}[${partition}] returned nothing below the end offset ${toOffset}`,
        );
      position = Math.max(position, result.nextOffset);
      // The next batches come while the handler works through these.
      if (position < toOffset) pending = fetchFrom(position);
      let beyond: number | null = null;
      for (const delivered of result.events) {
        if (delivered.offset >= toOffset) {
          beyond ??= delivered.offset;
          continue;
        }
        const { deliver, anomaly } = check.observe(delivered.offset, result.startOffset);
        this.#report(anomaly);
        if (!deliver) continue;
        if (!(await this.#waitForToken())) return;
        await this.#handler(delivered);
        check.passed(delivered.offset);
        this.#events++;
        this.#maybeReportProgress();
      }
      // The range ends in a hole: the offsets up to its end are missing.
      if (position >= toOffset) this.#report(check.skipTo(toOffset, result.startOffset), beyond ?? position);
      this.#maybeReportProgress();
    }
  }

  /** Waits for the rate limit; false if the replay was aborted meanwhile. */
  async #waitForToken(): Promise<boolean> {
    for (;;) {
      if (this.#aborted) return false;
      const waitMs = this.#bucket === null ? 0 : this.#bucket.take(performance.now());
      if (waitMs === 0) return true;
      await sleep(waitMs, this.#settings.signal);
    }
  }

  /** Counts and hands on an anomaly; `got` overrides the offset it names (a hole at the end of the range). */
  #report(anomaly: OffsetAnomaly | null, got?: number): void {
    if (anomaly === null) return;
    this.#anomalies[anomaly.kind]++;
    this.#settings.onAnomaly?.(got === undefined ? anomaly : { ...anomaly, got });
  }

  #maybeReportProgress(): void {
    const onProgress = this.#settings.onProgress;
    if (onProgress === null) return;
    const now = performance.now();
    if (now - this.#lastReportMs < this.#settings.progressIntervalMs) return;
    const progress = this.#progress();
    // The last event's turn: the report at the end says 100 % once, not twice.
    if (progress.remaining === 0) return;
    this.#lastReportMs = now;
    onProgress(progress);
  }

  #progress(): ReplayProgress {
    let done = 0;
    let total = 0;
    const partitions = this.#states.map(({ partition, fromOffset, toOffset, check }) => {
      const nextOffset = Math.min(check.expected, toOffset);
      done += nextOffset - fromOffset;
      total += toOffset - fromOffset;
      return { partition, fromOffset, toOffset, nextOffset };
    });
    return { done, remaining: total - done, total, partitions };
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal | null): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.ceil(ms));
    signal?.addEventListener('abort', done, { once: true });
  });
}
