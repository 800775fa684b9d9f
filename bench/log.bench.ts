/**
 * Log benchmark: append throughput for each event size × events per batch ×
 * flush policy, sequential read, and, in the same run, a plain `fs.writeSync`
 * loop of the same bytes as the baseline. Each scenario runs for a fixed time
 * (or until `maxBytes`) in a fresh temp directory that is removed afterwards.
 *
 * Throughput counts payload bytes only (what the producer sent), so the log's
 * 56-byte batch header is overhead it has to earn back, not a bonus.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomFillSync } from 'node:crypto';
import { PartitionLog, type FlushPolicy } from '../src/log/index.js';

export interface LogBenchOptions {
  /** Timed duration of each scenario. */
  readonly durationMs: number;
  /** Stop a scenario early once it has written this many payload bytes. */
  readonly maxBytes: number;
  /** Appends kept in flight at once (as a broker with many producers would). */
  readonly inFlight: number;
  readonly eventBytes: readonly number[];
  readonly batchEvents: readonly number[];
  readonly flushPolicies: readonly FlushPolicy[];
  /** Where the temp directories go (the disk being measured). */
  readonly tmpDir: string;
  /** Rounds per scenario, baseline and log alternating; results are the medians. */
  readonly rounds: number;
}

export const defaultLogBenchOptions: LogBenchOptions = {
  durationMs: 1000,
  maxBytes: 1024 ** 3,
  inFlight: 64,
  eventBytes: [100, 1024],
  batchEvents: [1, 100, 1000],
  flushPolicies: ['never', 'interval', 'always'],
  tmpDir: os.tmpdir(),
  rounds: 3,
};

export interface ScenarioResult {
  readonly name: 'append' | 'baseline-write' | 'read';
  readonly params: Readonly<Record<string, string | number>>;
  readonly eventsPerSec: number;
  readonly mbPerSec: number;
  readonly events: number;
  readonly bytes: number;
  readonly durationMs: number;
  /** Group commits (append) — how many fsyncs the events shared. */
  readonly flushes?: number;
  /** Segment rolls that had to create files on the appending thread (append). */
  readonly rollsUnprepared?: number;
  /** Append MB/s over the baseline MB/s of the same round (median over rounds). */
  readonly ratioToBaseline?: number;
  readonly rounds?: number;
  readonly mbPerSecRounds?: readonly number[];
}

export async function* runLogBenchmark(options: LogBenchOptions): AsyncGenerator<ScenarioResult> {
  for (const eventBytes of options.eventBytes) {
    for (const batchEvents of options.batchEvents) {
      const payload = randomFillSync(new Uint8Array(eventBytes * batchEvents));
      const params = { eventBytes, batchEvents };
      // Rounds alternate the baseline and the log, so that writeback left by one
      // scenario, or a noisy neighbour on the disk, weighs on both alike; each
      // append is compared with the baseline of its own round.
      const baselines: ScenarioResult[] = [];
      const appends = new Map<FlushPolicy, ScenarioResult[]>(
        options.flushPolicies.map((flush) => [flush, []]),
      );
      const reads: ScenarioResult[] = [];
      for (let round = 0; round < options.rounds; round++) {
        baselines.push(await baselineWrite(options, payload, params));
        for (const flush of options.flushPolicies) {
          const dir = fs.mkdtempSync(path.join(options.tmpDir, 'eddy-bench-log-'));
          try {
            appends.get(flush)?.push(await append(options, dir, payload, { ...params, flush }));
            if (flush === 'never' && batchEvents === 100) reads.push(await read(dir, params));
          } finally {
            fs.rmSync(dir, { recursive: true, force: true });
          }
        }
      }
      yield median(baselines);
      for (const runs of appends.values()) {
        const ratios = runs.map((run, round) => run.mbPerSec / (baselines[round] as ScenarioResult).mbPerSec);
        yield { ...median(runs), ratioToBaseline: Math.round(middle(ratios) * 100) / 100 };
      }
      if (reads.length > 0) yield median(reads);
    }
  }
}

function middle(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const half = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[half] as number)
    : ((sorted[half - 1] as number) + (sorted[half] as number)) / 2;
}

/** The run with the median throughput (a real run, not an average), with every round's figure beside it. */
function median(runs: readonly ScenarioResult[]): ScenarioResult {
  const sorted = [...runs].sort((a, b) => a.mbPerSec - b.mbPerSec);
  const chosen = sorted[(sorted.length - 1) >> 1] as ScenarioResult;
  return { ...chosen, rounds: runs.length, mbPerSecRounds: runs.map((run) => run.mbPerSec) };
}

function result(
  name: ScenarioResult['name'],
  params: ScenarioResult['params'],
  events: number,
  bytes: number,
  elapsedMs: number,
  extra: Partial<ScenarioResult> = {},
): ScenarioResult {
  const seconds = elapsedMs / 1000;
  return {
    name,
    params,
    eventsPerSec: Math.round(events / seconds),
    mbPerSec: Math.round((bytes / 1e6 / seconds) * 10) / 10,
    events,
    bytes,
    durationMs: Math.round(elapsedMs),
    ...extra,
  };
}

/**
 * A broker appends from network callbacks, so its event loop turns (and
 * completes background work such as preparing the next segment) between
 * batches, where resolved appends alone would chain microtasks and starve it.
 * The returned function hands every caller the same promise of one loop turn
 * once a millisecond has passed since the last, and null in between.
 */
function loopTurns(): (now: number) => Promise<void> | null {
  let turnAt = performance.now();
  let turn: Promise<void> | null = null;
  return (now) => {
    if (turn === null && now - turnAt >= 1) {
      turnAt = now;
      turn = new Promise((resolve) =>
        setImmediate(() => {
          turn = null;
          resolve();
        }),
      );
    }
    return turn;
  };
}

async function baselineWrite(
  options: LogBenchOptions,
  payload: Uint8Array,
  params: { eventBytes: number; batchEvents: number },
): Promise<ScenarioResult> {
  const dir = fs.mkdtempSync(path.join(options.tmpDir, 'eddy-bench-baseline-'));
  const fd = fs.openSync(path.join(dir, 'baseline'), 'w');
  try {
    let bytes = 0;
    const started = performance.now();
    const deadline = started + options.durationMs;
    const turnDue = loopTurns();
    for (let now = started; now < deadline && bytes < options.maxBytes; now = performance.now()) {
      const turn = turnDue(now);
      if (turn !== null) await turn;
      fs.writeSync(fd, payload);
      bytes += payload.length;
    }
    const elapsed = performance.now() - started;
    // Untimed, like the log's close: the next scenario must not inherit this one's writeback.
    fs.fsyncSync(fd);
    return result('baseline-write', params, (bytes / payload.length) * params.batchEvents, bytes, elapsed);
  } finally {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function append(
  options: LogBenchOptions,
  dir: string,
  payload: Uint8Array,
  params: { eventBytes: number; batchEvents: number; flush: FlushPolicy },
): Promise<ScenarioResult> {
  const log = await PartitionLog.open(dir, { flushPolicy: params.flush, maintenanceIntervalMs: 0 });
  const meta = { recordCount: params.batchEvents };
  let batches = 0;
  const started = performance.now();
  const deadline = started + options.durationMs;
  const batchesMax = Math.floor(options.maxBytes / payload.length);
  const turnDue = loopTurns();
  const producer = async (): Promise<void> => {
    for (let now = started; batches < batchesMax && now < deadline; now = performance.now()) {
      const turn = turnDue(now);
      if (turn !== null) await turn;
      batches++;
      await log.append(payload, meta);
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, producer));
  const elapsed = performance.now() - started;
  const { flushes, rollsUnprepared } = log.counters;
  await log.close();
  return result(
    'append',
    { ...params, inFlight: options.inFlight },
    batches * params.batchEvents,
    batches * payload.length,
    elapsed,
    { flushes, rollsUnprepared },
  );
}

async function read(
  dir: string,
  params: { eventBytes: number; batchEvents: number },
): Promise<ScenarioResult> {
  const log = await PartitionLog.open(dir, { maintenanceIntervalMs: 0 });
  const maxBytes = 1024 * 1024;
  let events = 0;
  let bytes = 0;
  const started = performance.now();
  for (let offset = log.startOffset; offset < log.endOffset;) {
    const chunk = log.read(offset, maxBytes);
    events += chunk.nextOffset - offset;
    bytes += chunk.bytes.length;
    offset = chunk.nextOffset;
  }
  const elapsed = performance.now() - started;
  await log.close();
  return result('read', { ...params, maxBytesPerRead: maxBytes, verifyCrc: 'yes' }, events, bytes, elapsed);
}
