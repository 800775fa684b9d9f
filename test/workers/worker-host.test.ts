import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  BATCH_HEADER_BYTES,
  PartitionLog,
  StorageError,
  lockFile,
  unlockFile,
  type ReadResult,
} from '../../src/log/index.js';
import { Broker, type Partition, type PartitionAppend } from '../../src/broker/index.js';
import { isBrokerError } from '../../src/protocol/index.js';
import { WorkerHost } from '../../src/workers/index.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const tempDir = useTempDirs('worker-host');
const hosts: WorkerHost[] = [];
afterEach(async () => {
  await Promise.all(hosts.splice(0).map((host) => host.close()));
});

function startHost(workers: number): WorkerHost {
  const host = new WorkerHost({ workers });
  hosts.push(host);
  return host;
}

const leader: PartitionAppend = {
  recordCount: 1,
  compression: 'none',
  key: null,
  durable: false,
  producerId: -1,
  sequence: -1,
};
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const payloadOf = (read: ReadResult): string =>
  new TextDecoder().decode(read.bytes.subarray(BATCH_HEADER_BYTES));

function read(partition: Partition, offset: number, maxBytes: number): Promise<ReadResult> {
  return new Promise((resolve, reject) =>
    // The view is valid only during the visit: copy what the test looks at.
    partition.read(offset, maxBytes, (result) => resolve({ ...result, bytes: result.bytes.slice() }), reject),
  );
}

describe('workers > WorkerHost', () => {
  it('appends and reads back through a worker thread, mirroring the offsets on this thread', async () => {
    const host = startHost(1);
    const partition = await host.open(path.join(tempDir(), 'p0'), {});
    expect([partition.startOffset, partition.endOffset]).toEqual([0, 0]);
    const first = await partition.append(utf8('first'), { ...leader, recordCount: 3 });
    const second = await partition.append(utf8('second'), { ...leader, durable: true, key: utf8('k') });
    expect([first, second]).toEqual([
      { baseOffset: 0, lastOffset: 2 },
      { baseOffset: 3, lastOffset: 3 },
    ]);
    expect(partition.endOffset).toBe(4);
    const visited = await read(partition, 0, 1);
    expect(visited).toMatchObject({ firstOffset: 0, nextOffset: 3, batchCount: 1 });
    expect(payloadOf(visited)).toBe('first');
    const fetched = await partition.fetch(3, 1 << 20);
    expect(fetched).toMatchObject({ firstOffset: 3, nextOffset: 4, batchCount: 1 });
    expect(fetched.bytes.length).toBeGreaterThan(BATCH_HEADER_BYTES);
    expect(await partition.offsetForTime(0)).toBe(0);
    expect(await partition.offsetForTime(Date.now() + 60_000)).toBeNull();
    await partition.close();
  });

  it('leaves a log that the main thread reopens with every acknowledged batch', async () => {
    const dir = path.join(tempDir(), 'p0');
    const host = startHost(2);
    const partition = await host.open(dir, { flushPolicy: 'always' });
    const appends = Array.from({ length: 200 }, (_, i) => partition.append(utf8(`event ${i}`), leader));
    const results = await Promise.all(appends);
    expect(results.map((result) => result.baseOffset)).toEqual(results.map((_, i) => i));
    await host.close();
    hosts.splice(hosts.indexOf(host), 1);
    const log = await PartitionLog.open(dir, {});
    expect(log.endOffset).toBe(200);
    expect(new TextDecoder().decode(log.read(199, 1).bytes.subarray(BATCH_HEADER_BYTES))).toBe('event 199');
    await log.close();
  });

  it('queues requests that do not fit in the ring and answers them all in order', async () => {
    const host = startHost(1); // a ring of 4 MiB: 64 appends of 100 KiB fill it and more
    const partition = await host.open(path.join(tempDir(), 'p0'), {});
    const block = new Uint8Array(100 * 1024).fill(7);
    const results = await Promise.all(Array.from({ length: 64 }, () => partition.append(block, leader)));
    expect(results.map((result) => result.baseOffset)).toEqual(results.map((_, i) => i));
    expect(partition.endOffset).toBe(64);
    const last = await partition.fetch(63, 1);
    expect(last.bytes.length).toBe(BATCH_HEADER_BYTES + block.length);
  });

  it('carries appends and reads larger than the ring beside it, in order with the rest', async () => {
    const host = startHost(1);
    const partition = await host.open(path.join(tempDir(), 'p0'), {});
    // 6 MiB is more than the whole 4 MiB ring; the small ones between them fill what is left of it.
    const blocks = Array.from({ length: 24 }, (_, i) =>
      new Uint8Array(i % 3 === 0 ? 6 * 1024 * 1024 : 300 * 1024).fill(i),
    );
    const results = await Promise.all(blocks.map((block) => partition.append(block, leader)));
    expect(results.map((result) => result.baseOffset)).toEqual(blocks.map((_, i) => i));
    for (const i of [0, 1, 21, 23]) {
      const read = await partition.fetch(i, 1);
      const stored = read.bytes.subarray(BATCH_HEADER_BYTES);
      expect(stored.length).toBe((blocks[i] as Uint8Array).length);
      expect(stored.every((byte) => byte === i)).toBe(true);
    }
    // A read answer of 9 MiB (several batches) comes back by the port too.
    const many = await partition.fetch(0, 9 * 1024 * 1024);
    expect(many.batchCount).toBe(3);
    expect(many.nextOffset).toBe(3);
  });

  it('spreads partitions over the workers and reports their thread ids', async () => {
    const host = startHost(2);
    const dir = tempDir();
    const partitions = await Promise.all([0, 1, 2, 3].map((p) => host.open(path.join(dir, `p${p}`), {})));
    await Promise.all(partitions.map((partition, p) => partition.append(utf8(`p${p}`), leader)));
    expect(partitions.map((partition) => partition.endOffset)).toEqual([1, 1, 1, 1]);
    expect(host.partitionsPerWorker).toEqual([2, 2]);
    expect(new Set(host.threadIds).size).toBe(2);
  });

  it('turns a storage error in the worker into a StorageError with its code', async () => {
    const host = startHost(1);
    const partition = await host.open(path.join(tempDir(), 'p0'), {});
    await partition.append(utf8('one'), leader);
    const error = await partition.fetch(5, 1).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).code).toBe('OFFSET_OUT_OF_RANGE');
  });

  it('rejects a second open of the same directory with LOCKED and keeps the first', async () => {
    const host = startHost(2);
    const dir = path.join(tempDir(), 'p0');
    const partition = await host.open(dir, {});
    const error = await host.open(dir, {}).catch((caught: unknown) => caught);
    expect((error as StorageError).code).toBe('LOCKED');
    expect(await partition.append(utf8('still here'), leader)).toEqual({ baseOffset: 0, lastOffset: 0 });
  });

  it('refuses a clock function, which cannot cross into a thread', async () => {
    const host = startHost(1);
    await expect(host.open(path.join(tempDir(), 'p0'), { nowMs: () => 0 })).rejects.toThrow(TypeError);
  });

  it('fails pending and later requests with a clear error when a worker thread dies', async () => {
    const host = startHost(1);
    const dir = path.join(tempDir(), 'p0');
    const partition = await host.open(dir, {});
    await host.terminateWorker(0);
    await expect(partition.append(utf8('lost'), leader)).rejects.toThrow(/partition worker 0 exited/);
    expect(partition.failure).toMatch(/partition worker 0 exited/);
    expect(fs.existsSync(dir)).toBe(true);
  });
});

describe('workers > a broker on partition workers', () => {
  it('closes after a worker died: reports the failure, closes the other partitions, frees the data directory', async () => {
    const dataDir = tempDir();
    const host = new WorkerHost({ workers: 2 });
    const broker = await Broker.open({ dataDir, partitions: host });
    await broker.createTopic('orders', 2);
    await host.terminateWorker(0);
    const closing = await broker.close().catch((error: unknown) => error);
    expect(isBrokerError(closing, 'STORAGE_FAILED')).toBe(true);
    // The broker's lock is free, and the live worker's partition closed cleanly; the dead
    // worker's log lock stays with this process until it exits (its thread could not release it).
    unlockFile(lockFile(path.join(dataDir, 'broker.lock')));
    const survivor = await PartitionLog.open(path.join(dataDir, 'topics', 'orders', '1'), {});
    await survivor.close();
  });
});
