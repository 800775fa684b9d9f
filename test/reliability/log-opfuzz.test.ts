/**
 * Operation fuzzing against a model (issue 7; RELIABILITY.md R6): seeded random sequences of
 * appends (sizes up to a segment, keys, tombstones, timestamps, record counts up to 2^31 − 1,
 * several in flight), reads from random offsets with random maxBytes, time lookups, flushes,
 * clock jumps, retention by size and time, compaction, and clean close + reopen with new options
 * (segment size, index interval, flush policy, retention), on a real PartitionLog in a temp
 * directory with small segments, so that it rolls often. After every operation the log is
 * compared with log-model.ts: the operation's result, the bytes of every batch a read returns,
 * start and end offsets, size and segment boundaries; every 1,000 operations and after each
 * reopen, the whole log. Each log starts fresh after 200–4,000 operations; while it has never
 * held a batch it is reopened, and given batches as large as a segment holds, more often (an empty
 * log is where the size of its first segment is decided).
 *
 * CI runs 100,000 operations with a fixed seed; scripts/soak/run.sh sets EDDY_OPFUZZ_OPS
 * (10,000,000) and then draws the seed from the clock. EDDY_OPFUZZ_SEED replays a run: the seed
 * is printed, and every divergence names it with the log and operation it happened at.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  BATCH_HEADER_BYTES,
  PartitionLog,
  StorageErrorCode,
  isStorageError,
  type AppendMeta,
  type FlushPolicy,
  type PartitionLogOptions,
  type ReadResult,
} from '../../src/log/index.js';
import { FILE_HEADER_BYTES } from '../../src/log/layout.js';
import { native } from '../../src/native/binding.js';
import { seededRandom } from '../helpers/random.js';
import { useMemoryTempDirs } from './fuzz/broker-process.js';
import { LogModel, diffBatches, type ModelAppend, type ModelSettings } from './log-model.js';
import { countError, recordFault } from './report.js';

// tmpfs when there is one: the check is of the log's logic, and `always` or a flush costs an msync.
const tempDir = useMemoryTempDirs('opfuzz');

const OPS = Number(process.env['EDDY_OPFUZZ_OPS'] ?? 100_000);
const SEED = Number(process.env['EDDY_OPFUZZ_SEED'] ?? (OPS > 100_000 ? Date.now() % 2 ** 31 : 20261129));
const KiB = 1024;
/** Operations on one directory before the next log starts fresh (a fresh log has an empty active segment). */
const LOG_OPS = { min: 200, max: 4_000 } as const;
/** A log without size retention is reopened with it once this large, so full checks stay cheap. */
const LOG_BYTES_MAX = 4 * 1024 * KiB;
const FULL_CHECK_EVERY = 1_000;
/** Chance that an operation on a log that has never held a batch is a reopen. */
const FRESH_REOPEN = 0.5;
const TRACE_LENGTH = 30;
const HELD_VIEWS = 8;

/** Relative weights of the operations. */
const WEIGHTS = {
  append: 34,
  burst: 6,
  read: 24,
  time: 8,
  clock: 8,
  flush: 2,
  retention: 4,
  compact: 1,
  reopen: 0.5,
  check: 0.5,
} as const;
type Operation = keyof typeof WEIGHTS;

/** Draws from one seeded generator. */
class Draw {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = seededRandom(seed);
  }
  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(values: readonly T[]): T {
    return values[Math.floor(this.next() * values.length)] as T;
  }
  operation(): Operation {
    const total = Object.values(WEIGHTS).reduce((sum, weight) => sum + weight, 0);
    let at = this.next() * total;
    for (const [operation, weight] of Object.entries(WEIGHTS)) {
      at -= weight;
      if (at < 0) return operation as Operation;
    }
    return 'check';
  }
}

interface Settings extends ModelSettings {
  readonly indexIntervalBytes: number;
  readonly flushPolicy: FlushPolicy;
  readonly verifyOnRead: boolean;
}

function drawSettings(draw: Draw): Settings {
  return {
    segmentBytes: draw.pick([64 * KiB, 96 * KiB, 128 * KiB, 256 * KiB]),
    segmentMaxAgeMs: draw.pick([60_000, 600_000, 3_600_000, 7 * 24 * 3_600_000]),
    indexIntervalBytes: draw.pick([64, 100, 512, 4096]),
    flushPolicy: draw.pick([
      'never',
      'never',
      'never',
      'never',
      'never',
      'interval',
      'interval',
      'always',
    ] as const),
    verifyOnRead: draw.chance(0.8),
    tombstoneRetentionMs: draw.pick([0, 60_000, 24 * 3_600_000]),
    ...(draw.chance(0.75) ? { retentionBytes: draw.int(64 * KiB, 1024 * KiB) } : {}),
    ...(draw.chance(0.4) ? { retentionMs: draw.pick([10_000, 120_000, 3_600_000]) } : {}),
  };
}

function optionsOf(settings: Settings, now: () => number): PartitionLogOptions {
  return {
    segmentBytes: settings.segmentBytes,
    segmentMaxAgeMs: settings.segmentMaxAgeMs,
    indexIntervalBytes: settings.indexIntervalBytes,
    flushPolicy: settings.flushPolicy,
    flushIntervalMs: 2,
    verifyOnRead: settings.verifyOnRead,
    tombstoneRetentionMs: settings.tombstoneRetentionMs,
    maintenanceIntervalMs: 0, // retention and compaction run when the fuzzer says
    nowMs: now,
    ...(settings.retentionMs === undefined ? {} : { retentionMs: settings.retentionMs }),
    ...(settings.retentionBytes === undefined ? {} : { retentionBytes: settings.retentionBytes }),
  };
}

function metaOf(args: ModelAppend): AppendMeta {
  return {
    recordCount: args.recordCount,
    ...(args.key === undefined ? {} : { key: args.key }),
    ...(args.tombstone === undefined ? {} : { tombstone: args.tombstone }),
    ...(args.compression === undefined ? {} : { compression: args.compression }),
    ...(args.producerId === undefined ? {} : { producerId: args.producerId }),
    ...(args.producerSequence === undefined ? {} : { producerSequence: args.producerSequence }),
    ...(args.firstTimestamp === undefined ? {} : { firstTimestamp: args.firstTimestamp }),
    ...(args.maxTimestamp === undefined ? {} : { maxTimestamp: args.maxTimestamp }),
  };
}

function describeAppend(args: ModelAppend): string {
  const parts = [`${args.payload.length} B`, `×${args.recordCount}`];
  if (args.key !== undefined) parts.push(`key ${args.key.length} B`);
  if (args.tombstone) parts.push('tombstone');
  if (args.firstTimestamp !== undefined) parts.push(`first ${args.firstTimestamp}`);
  if (args.maxTimestamp !== undefined) parts.push(`max ${args.maxTimestamp}`);
  return parts.join(' ');
}

/** Bytes payloads and keys are cut from (one per run, from the seed). */
function bytePool(seed: number, length: number): Uint8Array {
  const next = seededRandom(seed);
  const pool = new Uint8Array(length);
  for (let i = 0; i < length; i++) pool[i] = Math.floor(next() * 256);
  return pool;
}

class Divergence extends Error {}

interface Totals {
  operations: Record<Operation, number>;
  timeMs: Record<Operation, number>;
  appended: number;
  rolled: number;
  deletedSegments: number;
  compactedBatches: number;
  reopenMs: number[];
  fullChecks: number;
  heldViewChecks: number;
  segmentsMax: number;
  errors: Record<string, number>;
}

/** One directory: a real log and its model, driven by one seed. */
class LogFuzzer {
  readonly #draw: Draw;
  readonly #dir: string;
  readonly #pool: Uint8Array;
  readonly #keys: Uint8Array[];
  readonly #totals: Totals;
  readonly #clock: { now: number };
  readonly #trace: string[] = [];
  /** Read views kept across retention, compaction and reopens, with a copy of what they showed. */
  readonly #held: { view: Uint8Array; copy: Uint8Array }[] = [];
  #settings: Settings;
  #model: LogModel;
  #log: PartitionLog | null = null;
  #reopens = 0;

  constructor(seed: number, dir: string, pool: Uint8Array, totals: Totals) {
    this.#draw = new Draw(seed);
    this.#dir = dir;
    this.#pool = pool;
    this.#totals = totals;
    this.#keys = Array.from({ length: 12 }, () => this.#slice(this.#draw.int(1, 24)));
    this.#clock = { now: 1_700_000_000_000 + this.#draw.int(0, 10 ** 9) };
    this.#settings = drawSettings(this.#draw);
    this.#model = new LogModel(this.#clock.now, this.#settings.segmentBytes);
  }

  get trace(): readonly string[] {
    return this.#trace;
  }

  get #opened(): PartitionLog {
    if (this.#log === null) throw new Divergence('the log is not open');
    return this.#log;
  }

  async open(): Promise<void> {
    this.#log = await PartitionLog.open(
      this.#dir,
      optionsOf(this.#settings, () => this.#clock.now),
    );
    this.#checkShape('open');
  }

  async close(): Promise<void> {
    const log = this.#log;
    this.#log = null;
    if (log === null) return;
    this.#totals.rolled += log.counters.segmentsRolled;
    this.#totals.deletedSegments += log.counters.segmentsDeleted;
    await log.close();
  }

  /** Runs one operation and compares; throws a Divergence at the first difference. */
  async step(): Promise<void> {
    let operation = this.#draw.operation();
    // An empty log is where its first segment's size is decided: reopen it (with new options) more often.
    if (this.#model.endOffset === 0 && this.#draw.chance(FRESH_REOPEN)) operation = 'reopen';
    if (this.#model.sizeBytes > LOG_BYTES_MAX && this.#settings.retentionBytes === undefined)
      operation = 'reopen';
    this.#totals.operations[operation]++;
    const started = performance.now();
    switch (operation) {
      case 'append':
        await this.#append(1);
        break;
      case 'burst':
        await this.#append(this.#draw.int(2, 8));
        break;
      case 'read':
        this.#read(this.#drawOffset(), this.#drawMaxBytes(), true);
        break;
      case 'time':
        this.#offsetForTime(this.#drawTimestamp());
        break;
      case 'clock': {
        const r = this.#draw.next();
        const ms = r < 0.7 ? this.#draw.int(0, 5_000) : r < 0.97 ? this.#draw.int(0, 600_000) : 86_400_000;
        this.#clock.now += ms;
        this.#note(`clock +${ms} ms`);
        break;
      }
      case 'flush': {
        const log = this.#opened;
        await log.flush();
        this.#note('flush');
        if (log.durableOffset !== log.endOffset)
          throw new Divergence(`after flush: durable offset ${log.durableOffset}, end ${log.endOffset}`);
        break;
      }
      case 'retention':
        await this.#retention();
        break;
      case 'compact':
        await this.#compact();
        break;
      case 'reopen':
        await this.#reopen();
        break;
      case 'check':
        this.checkAll();
        break;
    }
    this.#checkShape(operation);
    this.#totals.timeMs[operation] += performance.now() - started;
  }

  /** Reads the whole log in random chunks and finds a time in each batch; checks held views. */
  checkAll(): void {
    this.#totals.fullChecks++;
    const chunk = this.#drawMaxBytes();
    for (let offset = this.#model.startOffset; offset < this.#model.endOffset;) {
      const read = this.#read(offset, chunk, false);
      if (read.batchCount === 0) break;
      offset = read.nextOffset;
    }
    const batches = this.#model.batches();
    for (let i = 0; i < 4 && batches.length > 0; i++)
      this.#offsetForTime(this.#draw.pick(batches).maxTimestamp + this.#draw.int(-1, 1));
    this.#checkHeld('check');
  }

  #note(entry: string): void {
    this.#trace.push(entry);
    if (this.#trace.length > TRACE_LENGTH) this.#trace.shift();
  }

  #slice(length: number): Uint8Array {
    const at = this.#draw.int(0, this.#pool.length - length);
    return this.#pool.subarray(at, at + length);
  }

  #drawAppend(): ModelAppend {
    const draw = this.#draw;
    const now = this.#clock.now;
    const k = draw.next();
    const key =
      k < 0.35
        ? undefined
        : k < 0.38
          ? new Uint8Array(0)
          : k < 0.39
            ? this.#slice(draw.int(256, 65_535))
            : draw.pick(this.#keys);
    const tombstone = key !== undefined && draw.chance(0.12);
    const keyBytes = key?.length ?? 0;
    // In an empty log, often a batch as large as a segment may hold (see FRESH_REOPEN).
    const s = this.#model.endOffset === 0 && draw.chance(0.5) ? 1 : draw.next();
    const limit = this.#settings.segmentBytes - FILE_HEADER_BYTES - BATCH_HEADER_BYTES - keyBytes;
    const payloadBytes =
      tombstone && draw.chance(0.5)
        ? 0
        : s < 0.5
          ? draw.int(0, 300)
          : s < 0.85
            ? draw.int(300, 4_000)
            : s < 0.98
              ? draw.int(4_000, 20_000)
              : Math.max(0, limit + draw.int(-3, 2)); // at the largest batch a segment holds
    const c = draw.next();
    const recordCount =
      c < 0.7
        ? draw.int(1, 10)
        : c < 0.95
          ? draw.int(11, 1_000)
          : c < 0.99
            ? draw.int(1_001, 100_000)
            : draw.int(100_001, 2 ** 31 - 1);
    const t = draw.next();
    const firstTimestamp =
      t < 0.4
        ? undefined
        : t < 0.95
          ? now + draw.int(-3_600_000, 3_600_000)
          : draw.pick([0, -1, -5_000_000_000, now - 400 * 86_400_000, now + 400 * 86_400_000]);
    const producer = draw.chance(0.2);
    const compression = draw.next();
    return {
      payload: this.#slice(payloadBytes),
      recordCount,
      ...(key === undefined ? {} : { key }),
      ...(tombstone ? { tombstone } : {}),
      ...(compression < 0.1
        ? { compression: 'lz4' as const }
        : compression < 0.2
          ? { compression: 'none' as const }
          : {}),
      ...(producer ? { producerId: draw.int(-1, 2 ** 40), producerSequence: draw.int(-1, 2 ** 31 - 1) } : {}),
      ...(firstTimestamp === undefined ? {} : { firstTimestamp }),
      ...(draw.chance(0.5) ? {} : { maxTimestamp: (firstTimestamp ?? now) + draw.int(-1_000, 600_000) }),
    };
  }

  /** `count` appends issued together (offsets are assigned in call order), each compared. */
  async #append(count: number): Promise<void> {
    const log = this.#opened;
    const drawn = Array.from({ length: count }, () => this.#drawAppend());
    const expected = drawn.map((args) => this.#model.append(args, this.#clock.now, this.#settings));
    const settled = await Promise.allSettled(drawn.map((args) => log.append(args.payload, metaOf(args))));
    for (const [i, outcome] of settled.entries()) {
      const wanted = expected[i];
      this.#note(`append ${describeAppend(drawn[i] as ModelAppend)} → ${JSON.stringify(wanted)}`);
      if (wanted === 'RECORD_TOO_LARGE') {
        if (
          outcome.status !== 'rejected' ||
          !isStorageError(outcome.reason, StorageErrorCode.RECORD_TOO_LARGE)
        )
          throw new Divergence(`append of a batch too large for a segment: ${describeOutcome(outcome)}`);
        countError(this.#totals.errors, StorageErrorCode.RECORD_TOO_LARGE);
        continue;
      }
      if (
        outcome.status !== 'fulfilled' ||
        wanted === undefined ||
        outcome.value.baseOffset !== wanted.baseOffset ||
        outcome.value.lastOffset !== wanted.lastOffset
      )
        throw new Divergence(`append: ${describeOutcome(outcome)}, expected ${JSON.stringify(wanted)}`);
      this.#totals.appended++;
    }
  }

  #drawOffset(): number {
    const draw = this.#draw;
    const start = this.#model.startOffset;
    const end = this.#model.endOffset;
    const r = draw.next();
    if (r < 0.06 && start > 0) return start - draw.int(1, Math.min(start, 1_000));
    if (r < 0.1) return end + draw.int(1, 1_000);
    if (r < 0.16 || end === start) return end;
    if (r < 0.5) {
      const batches = this.#model.batches();
      if (batches.length > 0) {
        const batch = draw.pick(batches);
        return draw.pick([
          batch.baseOffset,
          batch.baseOffset + batch.recordCount - 1,
          batch.baseOffset + batch.recordCount,
        ]);
      }
    }
    return start + Math.floor(draw.next() * (end - start));
  }

  #drawMaxBytes(): number {
    const r = this.#draw.next();
    return r < 0.3 ? 1 : r < 0.7 ? this.#draw.int(1, 20_000) : this.#draw.int(20_000, 300_000);
  }

  #drawTimestamp(): number {
    const draw = this.#draw;
    const r = draw.next();
    if (r < 0.5) {
      const batches = this.#model.batches();
      if (batches.length > 0) return draw.pick(batches).maxTimestamp + draw.int(-1, 1);
    }
    if (r < 0.97) return this.#clock.now + draw.int(-7_200_000, 7_200_000);
    return draw.pick([Number.MIN_SAFE_INTEGER + 1, Number.MAX_SAFE_INTEGER, 0]);
  }

  /** A read compared with the model; returns what the log answered (empty when out of range). */
  #read(fromOffset: number, maxBytes: number, hold: boolean): Pick<ReadResult, 'batchCount' | 'nextOffset'> {
    const expected = this.#model.read(fromOffset, maxBytes);
    const what = `read(${fromOffset}, ${maxBytes})`;
    let result: ReadResult;
    try {
      result = this.#opened.read(fromOffset, maxBytes);
    } catch (error) {
      if (expected === 'OFFSET_OUT_OF_RANGE' && isStorageError(error, StorageErrorCode.OFFSET_OUT_OF_RANGE)) {
        countError(this.#totals.errors, StorageErrorCode.OFFSET_OUT_OF_RANGE);
        if (hold) this.#note(`${what} → OFFSET_OUT_OF_RANGE`);
        return { batchCount: 0, nextOffset: fromOffset };
      }
      throw new Divergence(`${what} threw ${describeError(error)}, expected ${describeRead(expected)}`);
    }
    if (hold) this.#note(`${what} → ${result.batchCount} batches, next ${result.nextOffset}`);
    if (expected === 'OFFSET_OUT_OF_RANGE')
      throw new Divergence(`${what} returned ${result.batchCount} batches, expected OFFSET_OUT_OF_RANGE`);
    if (
      result.batchCount !== expected.batches.length ||
      result.firstOffset !== expected.firstOffset ||
      result.nextOffset !== expected.nextOffset
    ) {
      throw new Divergence(
        `${what} returned ${result.batchCount} batches [${result.firstOffset}, ${result.nextOffset}), ` +
          `expected ${describeRead(expected)}`,
      );
    }
    const difference = diffBatches(result.bytes, expected.batches, (bytes, seed) =>
      native.crc32c(bytes, seed),
    );
    if (difference !== null) throw new Divergence(`${what}: ${difference}`);
    if (hold && result.batchCount > 0 && this.#draw.chance(0.02)) {
      const kept = { view: result.bytes, copy: result.bytes.slice() };
      if (this.#held.length < HELD_VIEWS) this.#held.push(kept);
      else this.#held[this.#draw.int(0, HELD_VIEWS - 1)] = kept;
    }
    return result;
  }

  #offsetForTime(timestampMs: number): void {
    const expected = this.#model.offsetForTime(timestampMs);
    const actual = this.#opened.offsetForTime(timestampMs);
    this.#note(`offsetForTime(${timestampMs}) → ${actual}`);
    if (actual !== expected)
      throw new Divergence(`offsetForTime(${timestampMs}) is ${actual}, expected ${expected}`);
  }

  async #retention(): Promise<void> {
    const expected = this.#model.applyRetention(this.#clock.now, this.#settings);
    const actual = await this.#opened.applyRetention();
    this.#note(`applyRetention → ${JSON.stringify(actual)}`);
    if (actual.deletedSegments !== expected.deletedSegments || actual.freedBytes !== expected.freedBytes)
      throw new Divergence(
        `applyRetention gave ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`,
      );
    if (actual.deletedSegments > 0) this.#checkHeld('retention');
  }

  async #compact(): Promise<void> {
    const expected = this.#model.compact(this.#clock.now, this.#settings);
    const actual = await this.#opened.compact();
    this.#note(`compact → ${JSON.stringify(actual)}`);
    if (
      actual.segmentsCompacted !== expected.segmentsCompacted ||
      actual.batchesRemoved !== expected.batchesRemoved ||
      actual.bytesFreed !== expected.bytesFreed
    )
      throw new Divergence(`compact gave ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
    this.#totals.compactedBatches += actual.batchesRemoved;
    if (actual.segmentsCompacted > 0) this.#checkHeld('compaction');
  }

  /** A clean close, then an open with the same or new options: nothing may be dropped or change. */
  async #reopen(): Promise<void> {
    await this.close();
    this.#checkHeld('close');
    if (
      this.#draw.chance(0.5) ||
      (this.#model.sizeBytes > LOG_BYTES_MAX && this.#settings.retentionBytes === undefined)
    ) {
      const settings = drawSettings(this.#draw);
      this.#settings =
        this.#model.sizeBytes > LOG_BYTES_MAX && settings.retentionBytes === undefined
          ? { ...settings, retentionBytes: 1024 * KiB }
          : settings;
    }
    this.#note(`reopen ${JSON.stringify(this.#settings)}`);
    if (++this.#reopens % 10 === 0) (globalThis as { gc?: () => void }).gc?.();
    const started = performance.now();
    await this.open();
    this.#totals.reopenMs.push(performance.now() - started);
    this.#model.reopen(this.#clock.now, this.#settings);
    const { recovery } = this.#opened;
    if (
      !recovery.cleanShutdown ||
      recovery.droppedBatches + recovery.droppedBytes + recovery.removedSegments > 0
    )
      throw new Divergence(`a clean reopen recovered ${JSON.stringify(recovery)}`);
    this.#checkShape('reopen');
    this.checkAll();
  }

  /** State, offsets, size and segment boundaries: compared after every operation. */
  #checkShape(after: string): void {
    const log = this.#opened;
    const model = this.#model;
    if (log.state.kind !== 'open') throw new Divergence(`after ${after}: the log is ${log.state.kind}`);
    const pairs: [string, number | string, number | string][] = [
      ['start offset', log.startOffset, model.startOffset],
      ['end offset', log.endOffset, model.endOffset],
      ['segments', log.segmentBaseOffsets().join(','), model.segmentBaseOffsets().join(',')],
      ['size', log.sizeBytes, model.sizeBytes],
    ];
    for (const [name, actual, expected] of pairs)
      if (actual !== expected)
        throw new Divergence(`after ${after}: ${name} ${actual}, expected ${expected}`);
    this.#totals.segmentsMax = Math.max(this.#totals.segmentsMax, log.segmentCount);
  }

  /** Views handed out earlier must still show the same bytes, whatever happened to their segment. */
  #checkHeld(after: string): void {
    for (const { view, copy } of this.#held) {
      this.#totals.heldViewChecks++;
      if (Buffer.compare(view, copy) !== 0)
        throw new Divergence(`after ${after}: a read view held since earlier changed`);
    }
  }
}

function describeRead(read: ReturnType<LogModel['read']>): string {
  if (read === 'OFFSET_OUT_OF_RANGE') return read;
  return `${read.batches.length} batches [${read.firstOffset}, ${read.nextOffset})`;
}

function describeError(error: unknown): string {
  return isStorageError(error) ? `${error.code} (${error.message})` : String(error);
}

function describeOutcome(outcome: PromiseSettledResult<{ baseOffset: number; lastOffset: number }>): string {
  return outcome.status === 'fulfilled'
    ? JSON.stringify(outcome.value)
    : `rejected with ${describeError(outcome.reason)}`;
}

interface Found {
  readonly log: number;
  readonly operation: number;
  readonly problem: string;
  readonly trace: readonly string[];
}

describe('reliability > log opfuzz', () => {
  it(
    `matches an in-memory model over ${OPS} random operations: appends, reads, time lookups, flushes, retention, compaction and reopens`,
    { timeout: Math.max(120_000, OPS) },
    async () => {
      const started = performance.now();
      const seeds = seededRandom(SEED);
      const pool = bytePool(SEED, 512 * KiB);
      const totals: Totals = {
        operations: Object.fromEntries(Object.keys(WEIGHTS).map((name) => [name, 0])) as Record<
          Operation,
          number
        >,
        timeMs: Object.fromEntries(Object.keys(WEIGHTS).map((name) => [name, 0])) as Record<
          Operation,
          number
        >,
        appended: 0,
        rolled: 0,
        deletedSegments: 0,
        compactedBatches: 0,
        reopenMs: [],
        fullChecks: 0,
        heldViewChecks: 0,
        segmentsMax: 0,
        errors: {},
      };
      const found: Found[] = [];
      let done = 0;
      let logs = 0;
      while (done < OPS) {
        const logSeed = Math.floor(seeds() * 2 ** 31);
        const ops = Math.min(OPS - done, LOG_OPS.min + Math.floor(seeds() * (LOG_OPS.max - LOG_OPS.min)));
        const dir = tempDir();
        const fuzzer = new LogFuzzer(logSeed, dir, pool, totals);
        let operation = 0;
        try {
          await fuzzer.open();
          for (; operation < ops; operation++) {
            await fuzzer.step();
            if ((operation + 1) % FULL_CHECK_EVERY === 0) fuzzer.checkAll();
          }
          fuzzer.checkAll();
        } catch (error) {
          found.push({
            log: logs,
            operation,
            problem: error instanceof Divergence ? error.message : `threw ${describeError(error)}`,
            trace: fuzzer.trace.slice(-20),
          });
        }
        await fuzzer.close().catch(() => undefined);
        fs.rmSync(dir, { recursive: true, force: true });
        done += ops;
        logs++;
      }
      const seconds = (performance.now() - started) / 1000;
      const summary =
        `seed ${SEED}; ${done} operations on ${logs} logs in ${seconds.toFixed(1)} s ` +
        `(${Math.round(done / seconds)}/s): ${Object.entries(totals.operations)
          .map(([name, count]) => `${name} ${count}`)
          .join(', ')}; ${totals.appended} batches appended, ${totals.rolled} segment rolls, ` +
        `${totals.deletedSegments} segments deleted by retention, ${totals.compactedBatches} batches ` +
        `compacted away, up to ${totals.segmentsMax} segments, ${totals.fullChecks} full checks, ` +
        `${totals.heldViewChecks} checks of held read views; ${found.length} divergences; ` +
        `ms by operation: ${Object.entries(totals.timeMs)
          .map(([name, ms]) => `${name} ${Math.round(ms)}`)
          .join(', ')}`;
      console.log(`log opfuzz: ${summary}`);
      for (const divergence of found)
        console.log(
          `divergence (replay: EDDY_OPFUZZ_SEED=${SEED}, log ${divergence.log}, operation ${divergence.operation}): ` +
            `${divergence.problem}\n  last operations:\n    ${divergence.trace.join('\n    ')}`,
        );
      recordFault({
        fault: 'random log operations against an in-memory model (opfuzz)',
        runs: done,
        acknowledged: totals.appended,
        lost: 0,
        duplicated: 0,
        recoveryMs: totals.reopenMs,
        errors: { ...totals.errors, ...(found.length > 0 ? { divergence: found.length } : {}) },
        note: summary,
      });
      expect(totals.appended).toBeGreaterThan(done / 4);
      expect(totals.rolled).toBeGreaterThan(0);
      expect(totals.deletedSegments).toBeGreaterThan(0);
      expect(totals.compactedBatches).toBeGreaterThan(0);
      expect(
        found.map((divergence) => `log ${divergence.log} op ${divergence.operation}: ${divergence.problem}`),
      ).toEqual([]);
    },
  );
});
