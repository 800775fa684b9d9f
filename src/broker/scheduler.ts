/**
 * Scheduled delivery: a batch whose delivery time (the publish's `deliverAtMs`,
 * or the latest `deliverat` extension of its events) is in the future is not
 * appended to its topic but to the topic's schedule, and moved there once due.
 *
 * - The schedule of topic `t` is the system topic `$sys.scheduled.t`: one
 *   partition, created on the first scheduled publish, deleted with `t`, never
 *   visible through the API. Each scheduled batch is stored there as its topic
 *   would have stored it at publish (its transform's output when it had one,
 *   else the publisher's event block unchanged), and its batch key says where
 *   it goes (`ScheduledKey`: due time, partition or -1, the publish's own key,
 *   and whether its topic's transform ran on it already; if not, the
 *   transform the topic has when the batch falls due runs then). The
 *   event count and compression are the stored batch header's.
 * - `Scheduler` keeps every pending batch of every schedule in one min-heap by
 *   due time (offset and time only: the bytes stay in the log) and one timer
 *   for the earliest; due batches are read back and appended to their topic,
 *   routed as a publish at that moment would be.
 * - Progress is `schedule.json` beside the schedule's partition directory,
 *   replaced atomically (write, fsync, rename, fsync the directory): the
 *   offsets still pending below `scannedEnd`, everything from `scannedEnd` on
 *   being unread. At open, the heap is rebuilt from the log from the lowest
 *   pending offset. Its size is bounded by the pending batches, not by the
 *   delivered ones.
 * - A batch is recorded as delivered only after its append to the topic is
 *   fsynced; a crash between the two delivers it again at the next open
 *   (at least once). Progress writes are coalesced: one in flight, one more
 *   for whatever was delivered meanwhile.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AppendResult } from '../log/index.js';
import { forEachStoredBatch, type Compression, type StoredBatch } from '../protocol/index.js';
import type { Partition } from './partition.js';
import { monotonicMs } from './queue-group.js';

/** The furthest ahead a delivery time may be. */
export const DELIVERY_DELAY_MS_MAX = 365 * 24 * 60 * 60 * 1000;
/**
 * Batches one topic's schedule holds at once: bounds the heap (under 100 bytes
 * a batch) and the progress file, which lists the pending offsets.
 */
export const SCHEDULED_BATCHES_MAX = 1_000_000;
/** A log's batch key is at most this long (src/log/layout.ts). */
const LOG_KEY_BYTES_MAX = 0xffff;
const KEY_VERSION = 2;
/** Version byte, due time (int64), partition (int32), flags (uint8); then the publish's key. */
const KEY_HEADER_BYTES = 14;
/** Version 1 had no flags byte: its batches read as `transformed` (they were stored as that version stored them). */
const KEY_V1_HEADER_BYTES = 13;
/** Flags: the events are their topic's transform output already. */
const FLAG_TRANSFORMED = 1;
/** The longest key a scheduled publish may carry, with the schedule's header in front of it. */
export const SCHEDULED_KEY_BYTES_MAX = LOG_KEY_BYTES_MAX - KEY_HEADER_BYTES;
/** The longest one timer waits (setTimeout takes at most 2^31 − 1 ms); a longer wait re-arms it. */
const TIMER_MS_MAX = 60_000;
/** Due batches moved per pass; a longer backlog continues in the next pass. */
const DUE_BATCHES_PER_PASS = 256;
/** How long a batch whose move failed for a retriable reason waits, doubling to `RETRY_MS_MAX`. */
const RETRY_MS_MIN = 1_000;
const RETRY_MS_MAX = 60_000;
/**
 * How far the monotonic clock may move against the wall clock before the scheduler takes it for a
 * step of the wall clock. Below it (the two clocks read a moment apart, a millisecond wall clock,
 * slewing), batches due at one wall time keep one monotonic time, and so their publish order.
 */
const CLOCK_STEP_MS = 100;
/** Bytes read per fetch while rebuilding a schedule at open. */
const REBUILD_READ_BYTES = 1 << 20;
const PROGRESS_FILE = 'schedule.json';
const PROGRESS_VERSION = 1;

/** Where a scheduled batch goes and when: its batch key in the schedule topic. */
export interface ScheduledKey {
  readonly dueMs: number;
  /** -1: chosen at delivery, by key or round-robin. */
  readonly partition: number;
  /** The publish's key; null for none. */
  readonly key: Uint8Array | null;
  /**
   * Set when the events are their topic's transform output already (it had
   * one at publish): stored as they are when due. Absent: the topic's
   * transform in force when the batch falls due, if any, runs then.
   */
  readonly transformed?: true;
}

export function encodeScheduledKey(scheduled: ScheduledKey): Uint8Array {
  const key = scheduled.key ?? new Uint8Array(0);
  const bytes = new Uint8Array(KEY_HEADER_BYTES + key.length);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, KEY_VERSION);
  view.setUint32(1, scheduled.dueMs % 0x1_0000_0000, true);
  view.setUint32(5, Math.floor(scheduled.dueMs / 0x1_0000_0000), true);
  view.setInt32(9, scheduled.partition, true);
  view.setUint8(13, scheduled.transformed === true ? FLAG_TRANSFORMED : 0);
  bytes.set(key, KEY_HEADER_BYTES);
  return bytes;
}

/** The key of a stored scheduled batch; null when it is not one this version wrote. */
export function decodeScheduledKey(bytes: Uint8Array | null): ScheduledKey | null {
  if (bytes === null || (bytes[0] !== KEY_VERSION && bytes[0] !== 1)) return null;
  const header = bytes[0] === 1 ? KEY_V1_HEADER_BYTES : KEY_HEADER_BYTES;
  if (bytes.length < header) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dueMs = view.getUint32(1, true) + view.getUint32(5, true) * 0x1_0000_0000;
  if (!Number.isSafeInteger(dueMs)) return null;
  const key = bytes.subarray(header);
  const transformed = header === KEY_V1_HEADER_BYTES || (view.getUint8(13) & FLAG_TRANSFORMED) !== 0;
  return {
    dueMs,
    partition: view.getInt32(9, true),
    key: key.length > 0 ? key : null,
    ...(transformed ? { transformed: true as const } : {}),
  };
}

interface Progress {
  readonly version: number;
  readonly topic: string;
  /** Every batch below this offset is delivered (or dropped), but for `pending`. */
  readonly scannedEnd: number;
  readonly pending: readonly number[];
}

/** A batch waiting in a schedule. */
export interface DueBatch {
  readonly schedule: Schedule;
  readonly offset: number;
  /** The delivery time on the wall clock, as stored. */
  readonly dueMs: number;
  /**
   * The same moment on the monotonic clock: `dueMs` as the wall clock read
   * when the batch was added (published, or found at open). The scheduler
   * waits for this one, so a step of the wall clock afterwards neither
   * delivers the schedule at once nor holds it back.
   */
  readonly atMs: number;
  /** Moves tried and failed for a retriable reason. */
  readonly attempts: number;
}

/** What a schedule held at open, and what it had lost (a pending batch that retention removed, say). */
export interface OpenedSchedule {
  readonly schedule: Schedule;
  readonly due: readonly { readonly offset: number; readonly dueMs: number }[];
  readonly lost: readonly string[];
}

/** One topic's schedule: its system topic's partition, the batches in it still pending, and its progress file. */
export class Schedule {
  /** The topic the batches go to. */
  readonly topic: string;
  readonly log: Partition;
  readonly #file: string;
  readonly #pending = new Set<number>();
  /** The log's end before each append still in flight: progress vouches only for what lies below the least. */
  readonly #appendsFrom: number[] = [];
  /** Progress writes run one after the other; `#queued` is the next, not started yet, which every request joins. */
  #writes: Promise<void> = Promise.resolve();
  #queued: Promise<void> | null = null;
  /** The topic was deleted or the broker closes: nothing is added or moved any more. */
  closed = false;
  /** The topic was deleted: nothing is written any more either. */
  #deleted = false;

  private constructor(topic: string, log: Partition, dir: string) {
    this.topic = topic;
    this.log = log;
    this.#file = path.join(dir, PROGRESS_FILE);
  }

  /** How many batches wait. */
  get size(): number {
    return this.#pending.size;
  }

  /** Its topic was deleted: the batches are never delivered. */
  get deleted(): boolean {
    return this.#deleted;
  }

  /**
   * The schedule of `topic` in `log`, with its progress file in `dir` (the
   * schedule topic's directory): its pending batches read back from the log.
   */
  static async open(topic: string, log: Partition, dir: string): Promise<OpenedSchedule> {
    const schedule = new Schedule(topic, log, dir);
    const progress = readProgress(schedule.#file, topic);
    const end = log.endOffset;
    // The file vouches for offsets the log no longer has (an unflushed tail lost in a crash):
    // what is appended there from now on is new, and pending.
    const scannedEnd = Math.min(progress?.scannedEnd ?? 0, end);
    const listed = new Set(progress?.pending ?? []);
    const lost: string[] = [];
    const due: { offset: number; dueMs: number }[] = [];
    let from = scannedEnd;
    for (const offset of listed) from = Math.min(from, offset);
    let offset: number | null = Math.max(from, log.startOffset);
    while (offset !== null && offset < end) {
      const read = await log.fetch(offset, REBUILD_READ_BYTES);
      forEachStoredBatch(read.bytes, (batch) => {
        if (batch.baseOffset < scannedEnd && !listed.has(batch.baseOffset)) return;
        const scheduled = decodeScheduledKey(batch.key);
        if (scheduled === null) {
          lost.push(`the batch at offset ${batch.baseOffset} has no schedule key`);
          return;
        }
        schedule.#pending.add(batch.baseOffset);
        due.push({ offset: batch.baseOffset, dueMs: scheduled.dueMs });
      });
      offset = read.nextOffset > offset ? read.nextOffset : null;
    }
    // Pending batches that retention removed, or that an unflushed tail took with it in a crash.
    const gone = [...listed].filter((offset) => !schedule.#pending.has(offset)).length;
    if (gone > 0) lost.push(`${gone} pending batches are no longer in the log`);
    // Written at once when the file said more than the log holds, so that it never vouches for an
    // offset a new batch is appended at.
    if (progress === null || progress.scannedEnd > end || lost.length > 0) await schedule.save();
    return { schedule, due, lost };
  }

  /**
   * Appends a scheduled batch. The caller may reuse `events` once this
   * returns (the log copies them before).
   */
  append(
    events: Uint8Array,
    meta: {
      readonly recordCount: number;
      readonly compression: Compression;
      readonly key: Uint8Array;
      readonly durable: boolean;
    },
  ): Promise<AppendResult> {
    const from = this.log.endOffset;
    this.#appendsFrom.push(from);
    const settled = (): void => {
      this.#appendsFrom.splice(this.#appendsFrom.indexOf(from), 1);
    };
    let appending: Promise<AppendResult>;
    try {
      appending = this.log.append(events, { ...meta, producerId: -1, sequence: -1 });
    } catch (error) {
      settled();
      throw error;
    }
    return appending.then(
      (appended) => {
        settled();
        this.#pending.add(appended.baseOffset);
        return appended;
      },
      (error: unknown) => {
        settled();
        throw error;
      },
    );
  }

  /** The batch at `offset` reached its topic (or was dropped): it is recorded, soon. */
  done(offset: number): void {
    // A write that fails is tried again with the next batch done, or at close.
    if (this.#pending.delete(offset)) this.save().catch(() => undefined);
  }

  /** Reads the stored batch at `offset` (a copy or a view valid until the log's segment goes). */
  async read(offset: number): Promise<StoredBatch | null> {
    const fetched = await this.log.fetch(offset, 1);
    let found: StoredBatch | null = null;
    forEachStoredBatch(fetched.bytes, (batch) => {
      if (batch.baseOffset === offset) found = batch;
    });
    return found;
  }

  /**
   * Writes the progress after the write in flight, if any. Requests made
   * before that next write starts share it: a burst of deliveries costs two
   * writes, not one each.
   */
  save(): Promise<void> {
    if (this.#queued === null) {
      const queued = this.#writes.then(() => {
        this.#queued = null;
        return this.#deleted ? undefined : this.#write();
      });
      this.#queued = queued;
      this.#writes = queued.catch(() => undefined);
    }
    return this.#queued;
  }

  async #write(): Promise<void> {
    let scannedEnd = this.log.endOffset;
    for (const from of this.#appendsFrom) scannedEnd = Math.min(scannedEnd, from);
    const pending = [...this.#pending].filter((offset) => offset < scannedEnd).sort((a, b) => a - b);
    const progress: Progress = { version: PROGRESS_VERSION, topic: this.topic, scannedEnd, pending };
    const staging = `${this.#file}.tmp`;
    const file = await fs.promises.open(staging, 'w');
    try {
      await file.writeFile(JSON.stringify(progress) + '\n');
      await file.sync();
    } finally {
      await file.close();
    }
    await fs.promises.rename(staging, this.#file);
    const dir = await fs.promises.open(path.dirname(this.#file), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  /**
   * Stops the schedule: the progress is written a last time (unless its topic
   * was `deleted`: then no write runs after this resolves) and its log closed.
   */
  async close(deleted: boolean): Promise<void> {
    this.closed = true;
    this.#deleted = deleted;
    try {
      await (deleted ? this.#writes : this.save());
    } finally {
      await this.log.close();
    }
  }
}

function readProgress(file: string, topic: string): Progress | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  // Replaced by rename only, so never torn: anything else is damage, and guessing would lose or repeat batches.
  const progress = JSON.parse(text) as Progress;
  if (
    progress.version !== PROGRESS_VERSION ||
    progress.topic !== topic ||
    !Number.isSafeInteger(progress.scannedEnd) ||
    !Array.isArray(progress.pending) ||
    !progress.pending.every((offset) => Number.isSafeInteger(offset) && offset >= 0)
  )
    throw new Error(`${file} is not a version ${PROGRESS_VERSION} schedule of topic ${topic}`);
  return progress;
}

/** A min-heap of due batches by time, then by insertion (so one schedule's batches of a time keep their order). */
class DueHeap {
  #items: { batch: DueBatch; order: number }[] = [];
  #order = 0;

  get size(): number {
    return this.#items.length;
  }

  peek(): DueBatch | undefined {
    return this.#items[0]?.batch;
  }

  push(batch: DueBatch): void {
    const items = this.#items;
    items.push({ batch, order: this.#order++ });
    for (let i = items.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (!this.#before(i, parent)) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  pop(): DueBatch | undefined {
    const items = this.#items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top?.batch;
    items[0] = last;
    for (let i = 0; ;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < items.length && this.#before(left, least)) least = left;
      if (right < items.length && this.#before(right, least)) least = right;
      if (least === i) break;
      this.#swap(i, least);
      i = least;
    }
    return top.batch;
  }

  /** Keeps only the batches `keep` accepts (a topic's deletion drops its schedule's). */
  filter(keep: (batch: DueBatch) => boolean): void {
    const kept = this.#items.filter((item) => keep(item.batch));
    this.#items = [];
    for (const item of kept.sort((a, b) => a.order - b.order)) this.push(item.batch);
  }

  #before(a: number, b: number): boolean {
    const x = this.#items[a] as { batch: DueBatch; order: number };
    const y = this.#items[b] as { batch: DueBatch; order: number };
    return x.batch.atMs < y.batch.atMs || (x.batch.atMs === y.batch.atMs && x.order < y.order);
  }

  #swap(a: number, b: number): void {
    const items = this.#items;
    [items[a], items[b]] = [items[b] as (typeof items)[number], items[a] as (typeof items)[number]];
  }
}

/**
 * Moves due batches of every schedule to their topics, by `move`: given the
 * due batches of one pass in due order, it settles each (see `Broker`). One
 * pass at a time; a timer wakes it at the earliest due time.
 *
 * Delivery times are wall-clock times (a publisher names one), but the
 * scheduler waits on the monotonic clock: each batch's time is turned into a
 * monotonic one when it is added, by the wall clock of that moment. A wall
 * clock stepped afterwards (back an hour, forward a month) then moves no
 * delivery: a batch due in 5 s is delivered 5 s later, not an hour later nor
 * at once with everything due within the month. Only a restart reads the wall
 * clock again, as it must (the monotonic clock does not survive the process).
 */
export class Scheduler {
  readonly #heap = new DueHeap();
  /** The wall clock, for delivery times. */
  readonly #nowMs: () => number;
  /** The monotonic clock the timer runs on. */
  readonly #monotonicMs: () => number;
  readonly #move: (due: readonly DueBatch[]) => Promise<void>;
  #timer: ReturnType<typeof setTimeout> | null = null;
  /** The monotonic time the timer is set for. */
  #timerAtMs = Number.POSITIVE_INFINITY;
  /** Monotonic minus wall clock, as last taken (see CLOCK_STEP_MS); null before the first add. */
  #clockOffsetMs: number | null = null;
  #pass: Promise<void> | null = null;
  #closed = false;

  constructor(
    nowMs: () => number,
    move: (due: readonly DueBatch[]) => Promise<void>,
    monotonic: () => number = monotonicMs,
  ) {
    this.#nowMs = nowMs;
    this.#monotonicMs = monotonic;
    this.#move = move;
  }

  /** Batches waiting, over every schedule. */
  get size(): number {
    return this.#heap.size;
  }

  /** Schedules the batch at `offset` for `dueMs` on the wall clock (now or past: at once). */
  add(schedule: Schedule, offset: number, dueMs: number, attempts = 0): void {
    const nowMs = this.#nowMs();
    const offsetMs = this.#monotonicMs() - nowMs;
    if (this.#clockOffsetMs === null || Math.abs(offsetMs - this.#clockOffsetMs) > CLOCK_STEP_MS)
      this.#clockOffsetMs = offsetMs;
    // Taken afresh for each batch, the offset jitters by a millisecond, and batches due at the same
    // wall time would be delivered in that jitter's order instead of their publish order.
    const atMs = Math.max(dueMs, nowMs) + this.#clockOffsetMs;
    this.#push({ schedule, offset, dueMs, atMs, attempts });
  }

  /** A move failed for a reason that may pass (a failed partition, a full disk): tried again later. */
  retry(batch: DueBatch): void {
    const delayMs = Math.min(RETRY_MS_MIN * 2 ** Math.min(batch.attempts, 16), RETRY_MS_MAX);
    this.#push({
      schedule: batch.schedule,
      offset: batch.offset,
      dueMs: this.#nowMs() + delayMs,
      atMs: this.#monotonicMs() + delayMs,
      attempts: batch.attempts + 1,
    });
  }

  /** Drops a schedule's batches (its topic was deleted). */
  forget(schedule: Schedule): void {
    this.#heap.filter((batch) => batch.schedule !== schedule);
  }

  #push(batch: DueBatch): void {
    if (this.#closed || batch.schedule.closed) return;
    this.#heap.push(batch);
    if (batch.atMs < this.#timerAtMs) this.#arm();
  }

  #arm(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#timerAtMs = Number.POSITIVE_INFINITY;
    const next = this.#heap.peek();
    if (this.#closed || this.#pass !== null || next === undefined) return;
    const delayMs = Math.min(Math.max(next.atMs - this.#monotonicMs(), 0), TIMER_MS_MAX);
    this.#timerAtMs = next.atMs;
    this.#timer = setTimeout(() => this.#run(), delayMs);
    this.#timer.unref();
  }

  #run(): void {
    this.#timer = null;
    this.#timerAtMs = Number.POSITIVE_INFINITY;
    if (this.#closed || this.#pass !== null) return;
    this.#pass = (async () => {
      while (!this.#closed) {
        const now = this.#monotonicMs();
        const due: DueBatch[] = [];
        for (let next = this.#heap.peek(); next !== undefined && next.atMs <= now; next = this.#heap.peek()) {
          this.#heap.pop();
          if (!next.schedule.closed) due.push(next);
          if (due.length >= DUE_BATCHES_PER_PASS) break;
        }
        if (due.length === 0) return;
        await this.#move(due).catch(() => undefined); // `move` settles each batch itself
      }
    })().finally(() => {
      this.#pass = null;
      this.#arm();
    });
  }

  /** Stops the timer and waits for a pass in progress; what is left stays pending on disk. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    await this.#pass;
  }
}
