/**
 * What every area of `eddy bench micro` (bench/micro.bench.ts) hands the runner: cases, each one
 * function that benny calls in a loop, and how many operations one call performs (events
 * encoded, messages pushed, bytes checksummed once…), so that a case that works on a batch of
 * 100 events still reports operations per event.
 */
import { randomFillSync, randomUUID } from 'node:crypto';
import type { EventFields } from '../../src/protocol/index.js';

/** The areas `--scenario` may name, in the order they run. */
export const microAreaNames = ['frame', 'verify', 'crc32c', 'log', 'ring', 'cesql', 'wasm'] as const;
export type MicroAreaName = (typeof microAreaNames)[number];

export interface MicroCase {
  /** The case's name in results (`frame-encode`); cases of one name differ by `params`. */
  readonly name: string;
  /** What the case measures; `op` says what one operation is (an event, a call, a message). */
  readonly params: Readonly<Record<string, string | number>>;
  /** Operations one call performs: reported ops/s are calls/s × this. */
  readonly opsPerCall: number;
  /** One call. Synchronous, or a promise benny waits for before the next call. */
  readonly run: () => unknown;
}

/** An area's cases, ready to run, and what to stop or remove once they have. */
export interface MicroArea {
  readonly cases: readonly MicroCase[];
  close(): Promise<void>;
}

export const EVENT_TYPE = 'dev.eddy.bench';
export const EVENT_SOURCE = '/eddy/bench';

/**
 * Events as the SDK hands them to the encoder: an id of its own per event (a UUID), the
 * source, type, time and content type shared by the batch, `dataBytes` of random data.
 */
export function sdkEvents(count: number, dataBytes: number): EventFields[] {
  const time = new Date(Date.UTC(2026, 0, 2, 3, 4, 5)).toISOString();
  return Array.from({ length: count }, () => ({
    id: randomUUID(),
    source: EVENT_SOURCE,
    type: EVENT_TYPE,
    specversion: '1.0',
    time,
    datacontenttype: 'application/octet-stream',
    data: randomFillSync(new Uint8Array(dataBytes)),
  }));
}
