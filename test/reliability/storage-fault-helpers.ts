/**
 * Shared pieces of the storage-fault checks (storage-faults.test.ts): an
 * in-process broker on a data directory, a client that fails fast, reading a
 * partition back through the client, the HTTP status endpoints, and the
 * layout of segment files on disk (to tear, zero or flip exactly the bytes a
 * check means to).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { connect, isBrokerError, type EddyClient } from '../../src/client/index.js';
import { startBroker, type RunningBroker } from '../../src/server/index.js';
import type { TopicConfig } from '../../src/broker/index.js';
import { BATCH_HEADER_BYTES, BatchField } from '../../src/log/index.js';
import { FILE_HEADER_BYTES } from '../../src/log/layout.js';

/** The storage format's layout (docs/storage-format.md), re-exported for the checks. */
export { BATCH_HEADER_BYTES, BatchField } from '../../src/log/index.js';
export { FILE_HEADER_BYTES } from '../../src/log/layout.js';

/** A broker node on `dataDir` in this process, partitions on the main thread. */
export function startNode(dataDir: string, topicDefaults: Partial<TopicConfig> = {}): Promise<RunningBroker> {
  return startBroker({ port: 0, dataDir, workers: 0, shutdownGraceMs: 0, topicDefaults });
}

/** A client that does not linger (calls made together still share a batch) and does not reconnect (a fault must show, not be retried). */
export async function clientOf(broker: RunningBroker): Promise<EddyClient> {
  const client = await connect(broker.url, { lingerMs: 0, reconnectMaxDelayMs: 0 });
  client.onError = () => undefined;
  return client;
}

export function partitionDir(dataDir: string, topic: string, partition: number): string {
  return path.join(dataDir, 'topics', topic, String(partition));
}

export function segmentFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((name) => /^\d{20}\.log$/.test(name))
    .sort()
    .map((name) => path.join(dir, name));
}

export function indexFiles(dir: string, suffix: 'index' | 'timeindex'): string[] {
  return segmentFiles(dir).map((file) => file.replace(/\.log$/, `.${suffix}`));
}

/** One stored batch as found in a segment file. */
export interface BatchOnDisk {
  readonly position: number;
  readonly bytes: number;
  readonly baseOffset: number;
  readonly recordCount: number;
  readonly maxTimestamp: number;
}

/** The batches of a segment file, walked by their length fields from the file header to the first zero header. */
export function batchesOnDisk(file: string): BatchOnDisk[] {
  const bytes = fs.readFileSync(file);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const batches: BatchOnDisk[] = [];
  for (let at = FILE_HEADER_BYTES; at + BATCH_HEADER_BYTES <= bytes.length;) {
    const size = view.getUint32(at + BatchField.batchBytes, true);
    if (size === 0) break;
    batches.push({
      position: at,
      bytes: size,
      baseOffset: Number(view.getBigInt64(at + BatchField.baseOffset, true)),
      recordCount: view.getUint32(at + BatchField.recordCount, true),
      maxTimestamp: Number(view.getBigInt64(at + BatchField.maxTimestamp, true)),
    });
    at += size;
  }
  return batches;
}

/** Overwrites bytes of a file in place (through the page cache a running broker's mapping shows). */
export function patchFile(file: string, position: number, bytes: Uint8Array): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, position);
  } finally {
    fs.closeSync(fd);
  }
}

export function readByte(file: string, position: number): number {
  const fd = fs.openSync(file, 'r');
  try {
    const byte = new Uint8Array(1);
    fs.readSync(fd, byte, 0, 1, position);
    return byte[0] as number;
  } finally {
    fs.closeSync(fd);
  }
}

/** Flips bit `bit` (0–7) of the byte at `position`. Flipping again restores it. */
export function flipBit(file: string, position: number, bit: number): void {
  patchFile(file, position, new Uint8Array([readByte(file, position) ^ (1 << bit)]));
}

/** The error name a client saw (a BrokerError's name, else the error's class). */
export function errorName(error: unknown): string {
  if (isBrokerError(error)) return error.errorName;
  return error instanceof Error ? error.name : typeof error;
}

/** Event ids by offset, read through the client's Fetch from `from` up to the end of the partition. */
export async function readIds(
  client: EddyClient,
  topic: string,
  partition: number,
  from = 0,
): Promise<Map<number, string>> {
  const ids = new Map<number, string>();
  for (let offset = from; ;) {
    const fetched = await client.fetch(topic, partition, offset, 256 * 1024);
    for (const delivered of fetched.events) ids.set(delivered.offset, delivered.event.id);
    if (fetched.nextOffset <= offset || fetched.nextOffset >= fetched.endOffset) break;
    offset = fetched.nextOffset;
  }
  return ids;
}

export interface ReadyState {
  readonly status: number;
  readonly body: { ready: boolean; failedPartitions: { topic: string; partition: number; error: string }[] };
}

export async function readyz(url: string): Promise<ReadyState> {
  const response = await fetch(`${url}/readyz`);
  return { status: response.status, body: (await response.json()) as ReadyState['body'] };
}

export async function metricsText(url: string): Promise<string> {
  return (await fetch(`${url}/metrics`)).text();
}

/** GET /v1/topics/:topic/events: the status, and the problem's code or the events' ids. */
export async function httpRead(
  url: string,
  topic: string,
  partition: number,
  offset: number,
  limit = 100,
): Promise<{ status: number; code: string | null; ids: string[] }> {
  const response = await fetch(
    `${url}/v1/topics/${topic}/events?partition=${partition}&offset=${offset}&limit=${limit}`,
  );
  const body = (await response.json()) as { code?: string } | { id: string }[];
  if (Array.isArray(body)) return { status: response.status, code: null, ids: body.map((e) => e.id) };
  return { status: response.status, code: body.code ?? null, ids: [] };
}

/** Mounts a tmpfs of `sizeBytes` on `dir`, or says why it cannot (mounting needs root). */
export function mountTmpfs(dir: string, sizeBytes: number): (() => void) | string {
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir], {
    encoding: 'utf8',
  });
  if (mounted.status !== 0)
    return `cannot mount a tmpfs here (${(mounted.stderr || mounted.error?.message || '').trim()})`;
  // Lazy: mappings of deleted segments live until their buffers are collected and keep the mount busy.
  return () => execFileSync('umount', ['--lazy', dir]);
}

/** Runs the garbage collector a few times, so unmapped segments release their blocks. */
export async function collectGarbage(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    (globalThis as { gc?: () => void }).gc?.();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}
