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
}

export const defaultLogBenchOptions: LogBenchOptions = {
  durationMs: 2000,
  maxBytes: 1024 ** 3,
  inFlight: 64,
  eventBytes: [100, 1024],
  batchEvents: [1, 100, 1000],
  flushPolicies: ['never', 'interval', 'always'],
  tmpDir: os.tmpdir(),
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
}

export async function* runLogBenchmark(options: LogBenchOptions): AsyncGenerator<ScenarioResult> {
  for (const eventBytes of options.eventBytes) {
    for (const batchEvents of options.batchEvents) {
      const payload = randomFillSync(new Uint8Array(eventBytes * batchEvents));
      yield baselineWrite(options, payload, { eventBytes, batchEvents });
      for (const flush of options.flushPolicies) {
        const dir = fs.mkdtempSync(path.join(options.tmpDir, 'eddy-bench-log-'));
        try {
          yield await append(options, dir, payload, { eventBytes, batchEvents, flush });
          if (flush === 'never' && batchEvents === 100) yield await read(dir, { eventBytes, batchEvents });
        } finally {
          fs.rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  }
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

function baselineWrite(
  options: LogBenchOptions,
  payload: Uint8Array,
  params: { eventBytes: number; batchEvents: number },
): ScenarioResult {
  const dir = fs.mkdtempSync(path.join(options.tmpDir, 'eddy-bench-baseline-'));
  const fd = fs.openSync(path.join(dir, 'baseline'), 'w');
  try {
    let bytes = 0;
    const started = performance.now();
    const deadline = started + options.durationMs;
    while (performance.now() < deadline && bytes < options.maxBytes) {
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
  const producer = async (): Promise<void> => {
    while (batches < batchesMax && performance.now() < deadline) {
      batches++;
      await log.append(payload, meta);
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, producer));
  const elapsed = performance.now() - started;
  const flushes = log.counters.flushes;
  await log.close();
  return result(
    'append',
    { ...params, inFlight: options.inFlight },
    batches * params.batchEvents,
    batches * payload.length,
    elapsed,
    { flushes },
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
