import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { QueueSnapshot } from '../../src/broker/queue-state.js';
import {
  defaultQueueConfig,
  defaultSubscriptionConfig,
  type SubscriptionDefinition,
} from '../../src/broker/subscription-config.js';
import { STATE_FILE, SubscriptionStore } from '../../src/broker/subscription-store.js';
import { isBrokerError } from '../../src/protocol/index.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const tempDir = useTempDirs('subscription-store');

const HEADER_BYTES = 4096;
const SLOT_HEADER_BYTES = 16;

const stream: SubscriptionDefinition = {
  name: 'audit',
  topic: 'orders',
  type: 'stream',
  filter: '',
  config: defaultSubscriptionConfig,
};

const queue: SubscriptionDefinition = {
  name: 'jobs',
  topic: 'orders',
  type: 'queue',
  filter: '',
  config: { ...defaultSubscriptionConfig, queue: defaultQueueConfig },
};

const opened: SubscriptionStore[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((store) => store.close()));
});

/**
 * Holds every thread of libuv's pool until the returned function is called
 * (each blocks opening a FIFO for reading, until a writer opens it), so that
 * file operations started meanwhile wait.
 */
function occupyThreadPool(dir: string): () => Promise<void> {
  const threads = Number(process.env['UV_THREADPOOL_SIZE'] ?? 4);
  const fifos = Array.from({ length: threads }, (_, i) => path.join(dir, `fifo-${i}`));
  for (const fifo of fifos) execFileSync('mkfifo', [fifo]);
  const readers = fifos.map((fifo) => fs.promises.open(fifo, 'r'));
  return async () => {
    for (const fifo of fifos) fs.closeSync(fs.openSync(fifo, 'w'));
    for (const reader of readers) await (await reader).close();
  };
}

function open(dataDir: string): SubscriptionStore {
  const store = new SubscriptionStore(dataDir);
  opened.push(store);
  return store;
}

/** What a broker restarting on `dataDir` reads: one subscription's offsets and queue state. */
function reload(dataDir: string, name: string): { offsets: object; queue: object } {
  const store = open(dataDir);
  const stored = store.load().find((s) => s.definition.name === name);
  if (stored === undefined) throw new Error(`${name} is not stored`);
  return { offsets: Object.fromEntries(stored.offsets), queue: Object.fromEntries(stored.queue) };
}

function stateFile(dataDir: string, name: string): string {
  return path.join(dataDir, 'subscriptions', name, STATE_FILE);
}

function slotBytesOf(file: string): number {
  return fs.readFileSync(file).readUInt32LE(8);
}

/** Where slot `index` starts. */
function slotAt(file: string, index: number): number {
  return HEADER_BYTES + index * slotBytesOf(file);
}

function flip(bytes: Buffer, at: number): void {
  bytes.writeUInt8(bytes.readUInt8(at) ^ 0x20, at);
}

/** The error a broker restarting on `dataDir` meets reading its subscriptions. */
function loadError(dataDir: string): unknown {
  try {
    open(dataDir).load();
  } catch (error) {
    return error;
  }
  throw new Error('load did not fail');
}

/** A tmpfs of `sizeBytes` at `dir` (root only): its unmount, or why there is none. */
function mountTmpfs(dir: string, sizeBytes: number): (() => void) | string {
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir], {
    encoding: 'utf8',
  });
  if (mounted.status !== 0) return `cannot mount a tmpfs here (${(mounted.stderr || '').trim()})`;
  return () => execFileSync('umount', ['--lazy', dir]);
}

/** Writes to `file` until the filesystem has not one block left. */
function fillDisk(file: string): void {
  const fd = fs.openSync(file, 'w');
  try {
    for (const chunk of [64 * 1024, 4096, 1])
      for (;;) {
        try {
          fs.writeSync(fd, new Uint8Array(chunk));
        } catch {
          break; // ENOSPC
        }
      }
  } finally {
    fs.closeSync(fd);
  }
}

function snapshot(nextOffset: number, unacked: QueueSnapshot['unacked'] = []): QueueSnapshot {
  return { version: 1, nextOffset, unacked };
}

describe('broker > subscription store', () => {
  it('reads back the offsets and queue state last written', async () => {
    const dataDir = tempDir();
    const store = open(dataDir);
    store.create(stream, new Map([['orders/0', 0]]));
    store.create(queue, new Map([['orders/0', 0]]));
    await store.writeOffsets('audit', new Map([['orders/0', 17]]));
    await store.writeOffsets(
      'audit',
      new Map([
        ['orders/0', 42],
        ['orders/1', 3],
      ]),
    );
    await store.writeQueue('jobs', { 'orders/0': snapshot(12, [[4, 2, 'db down']]) });
    expect(reload(dataDir, 'audit')).toEqual({ offsets: { 'orders/0': 42, 'orders/1': 3 }, queue: {} });
    expect(reload(dataDir, 'jobs')).toEqual({
      offsets: { 'orders/0': 0 },
      queue: { 'orders/0': snapshot(12, [[4, 2, 'db down']]) },
    });
  });

  it('rewrites the state in place: same file, same size, whatever the number of commits', async () => {
    const dataDir = tempDir();
    const store = open(dataDir);
    store.create(stream, new Map([['orders/0', 0]]));
    const file = stateFile(dataDir, 'audit');
    const before = fs.statSync(file);
    for (let offset = 1; offset <= 50; offset++)
      await store.writeOffsets('audit', new Map([['orders/0', offset]]));
    const after = fs.statSync(file);
    expect({ inode: after.ino, size: after.size }).toEqual({ inode: before.ino, size: before.size });
    expect(before.blocks * 512).toBeGreaterThanOrEqual(before.size); // allocated, not a sparse hole
    expect(fs.readdirSync(path.dirname(file)).sort()).toEqual([STATE_FILE, 'subscription.json']);
    expect(reload(dataDir, 'audit').offsets).toEqual({ 'orders/0': 50 });
  });

  it('writes commits that arrive together in one write holding all of them', async () => {
    const dataDir = tempDir();
    const store = open(dataDir);
    store.create(queue, new Map([['orders/0', 0]]));
    await Promise.all([
      store.writeOffsets('jobs', new Map([['orders/0', 5]])),
      store.writeQueue('jobs', { 'orders/0': snapshot(7) }),
      store.writeQueue('jobs', { 'orders/0': snapshot(9, [[8, 1, null]]) }),
    ]);
    expect(reload(dataDir, 'jobs')).toEqual({
      offsets: { 'orders/0': 5 },
      queue: { 'orders/0': snapshot(9, [[8, 1, null]]) },
    });
  });

  it('falls back to the other slot when the newest one is garbled', async () => {
    const dataDir = tempDir();
    const store = open(dataDir);
    store.create(stream, new Map([['orders/0', 0]])); // sequence 1, slot 1
    await store.writeOffsets('audit', new Map([['orders/0', 5]])); // sequence 2, slot 0
    await store.writeOffsets('audit', new Map([['orders/0', 9]])); // sequence 3, slot 1
    await store.close();
    const file = stateFile(dataDir, 'audit');
    const bytes = fs.readFileSync(file);
    flip(bytes, slotAt(file, 1) + SLOT_HEADER_BYTES + 3);
    fs.writeFileSync(file, bytes);
    expect(reload(dataDir, 'audit').offsets).toEqual({ 'orders/0': 5 });
  });

  it('falls back to the other slot when the file is cut short inside the newest one, and rewrites it whole', async () => {
    const dataDir = tempDir();
    let store = open(dataDir);
    store.create(stream, new Map([['orders/0', 0]]));
    await store.writeOffsets('audit', new Map([['orders/0', 5]])); // slot 0
    await store.writeOffsets('audit', new Map([['orders/0', 9]])); // slot 1
    await store.close();
    const file = stateFile(dataDir, 'audit');
    const size = fs.statSync(file).size;
    fs.truncateSync(file, slotAt(file, 1) + SLOT_HEADER_BYTES + 4);
    store = open(dataDir);
    expect(Object.fromEntries(store.load()[0]!.offsets)).toEqual({ 'orders/0': 5 });
    await store.writeOffsets('audit', new Map([['orders/0', 11]]));
    await store.close();
    expect(fs.statSync(file).size).toBe(size);
    expect(reload(dataDir, 'audit').offsets).toEqual({ 'orders/0': 11 });
  });

  it('leaves the old or the new state whatever part of a write reached the disk', async () => {
    const dataDir = tempDir();
    const store = open(dataDir);
    store.create(stream, new Map([['orders/0', 0]]));
    await store.writeOffsets('audit', new Map([['orders/0', 5]]));
    const file = stateFile(dataDir, 'audit');
    const old = fs.readFileSync(file);
    await store.writeOffsets('audit', new Map([['orders/0', 123456]]));
    await store.close();
    const written = fs.readFileSync(file);
    let first = 0;
    while (old[first] === written[first]) first++;
    let end = written.length;
    while (old[end - 1] === written[end - 1]) end--;
    const seen = new Set<number>();
    // Every prefix and every suffix of the write, as a crash tearing it between sectors could leave.
    for (let cut = first; cut <= end; cut++) {
      for (const torn of [
        Buffer.concat([written.subarray(0, cut), old.subarray(cut)]),
        Buffer.concat([old.subarray(0, cut), written.subarray(cut)]),
      ]) {
        fs.writeFileSync(file, torn);
        const offset = reload(dataDir, 'audit').offsets as Record<string, number>;
        expect([5, 123456]).toContain(offset['orders/0']);
        seen.add(offset['orders/0']!);
      }
    }
    expect([...seen].sort((a, b) => a - b)).toEqual([5, 123456]);
  });

  it('refuses to open, with CORRUPT_DATA, when both slots are damaged', async () => {
    const dataDir = tempDir();
    const store = open(dataDir);
    store.create(stream, new Map([['orders/0', 0]]));
    await store.writeOffsets('audit', new Map([['orders/0', 5]]));
    await store.close();
    const file = stateFile(dataDir, 'audit');
    const bytes = fs.readFileSync(file);
    for (const index of [0, 1]) flip(bytes, slotAt(file, index) + SLOT_HEADER_BYTES + 2);
    fs.writeFileSync(file, bytes);
    const error = loadError(dataDir);
    expect(isBrokerError(error, 'CORRUPT_DATA')).toBe(true);
    expect((error as Error).message).toContain(file);
    expect((error as Error).message).toMatch(/slot 0: checksum mismatch.*slot 1: checksum mismatch/);
  });

  it('refuses to open, with CORRUPT_DATA, a state file whose header is damaged', async () => {
    const dataDir = tempDir();
    open(dataDir).create(stream, new Map([['orders/0', 0]]));
    const file = stateFile(dataDir, 'audit');
    const bytes = fs.readFileSync(file);
    flip(bytes, 8); // slot bytes
    fs.writeFileSync(file, bytes);
    const error = loadError(dataDir);
    expect(isBrokerError(error, 'CORRUPT_DATA')).toBe(true);
    expect((error as Error).message).toMatch(/header fails its checksum/);
  });

  it('reads offsets.json and queue.json of an earlier version, and moves them into the state file at the first write', async () => {
    const dataDir = tempDir();
    const dir = path.join(dataDir, 'subscriptions', 'jobs');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'subscription.json'), JSON.stringify({ version: 1, definition: queue }));
    fs.writeFileSync(
      path.join(dir, 'offsets.json'),
      JSON.stringify({ version: 1, offsets: { 'orders/0': 4, 'orders/1': 0 } }),
    );
    fs.writeFileSync(
      path.join(dir, 'queue.json'),
      JSON.stringify({ version: 1, partitions: { 'orders/0': snapshot(10, [[6, 3, 'timeout']]) } }),
    );
    const store = open(dataDir);
    expect(store.load().map((s) => [Object.fromEntries(s.offsets), Object.fromEntries(s.queue)])).toEqual([
      [{ 'orders/0': 4, 'orders/1': 0 }, { 'orders/0': snapshot(10, [[6, 3, 'timeout']]) }],
    ]);
    expect(fs.existsSync(path.join(dir, STATE_FILE))).toBe(false); // reading changes nothing
    await store.writeOffsets(
      'jobs',
      new Map([
        ['orders/0', 4],
        ['orders/1', 2],
      ]),
    );
    await store.close();
    expect(fs.readdirSync(dir).sort()).toEqual([STATE_FILE, 'subscription.json']);
    expect(reload(dataDir, 'jobs')).toEqual({
      offsets: { 'orders/0': 4, 'orders/1': 2 },
      queue: { 'orders/0': snapshot(10, [[6, 3, 'timeout']]) },
    });
  });

  it('prefers the state file to JSON files a crash left beside it during the move, and removes them', async () => {
    const dataDir = tempDir();
    const store = open(dataDir);
    store.create(stream, new Map([['orders/0', 0]]));
    await store.writeOffsets('audit', new Map([['orders/0', 8]]));
    await store.close();
    const dir = path.join(dataDir, 'subscriptions', 'audit');
    fs.writeFileSync(
      path.join(dir, 'offsets.json'),
      JSON.stringify({ version: 1, offsets: { 'orders/0': 1 } }),
    );
    expect(reload(dataDir, 'audit').offsets).toEqual({ 'orders/0': 8 });
    expect(fs.existsSync(path.join(dir, 'offsets.json'))).toBe(false);
  });

  it('grows the state file when the state outgrows its slot, then writes in place again', async () => {
    const dataDir = tempDir();
    const store = open(dataDir);
    store.create(queue, new Map([['orders/0', 0]]));
    const file = stateFile(dataDir, 'jobs');
    const slotBytes = slotBytesOf(file);
    // Unacked events with long errors: far more than the slot holds.
    const unacked = Array.from({ length: 400 }, (_, i) => [i, 2, 'e'.repeat(500)] as const);
    await store.writeQueue('jobs', { 'orders/0': snapshot(1000, unacked) });
    const grown = fs.statSync(file);
    expect(slotBytesOf(file)).toBeGreaterThan(2 * 400 * 500);
    expect(grown.size).toBe(HEADER_BYTES + 2 * slotBytesOf(file));
    expect(slotBytesOf(file)).toBeGreaterThan(slotBytes);
    await store.writeQueue('jobs', { 'orders/0': snapshot(1000, unacked.slice(1)) });
    const after = fs.statSync(file);
    expect({ inode: after.ino, size: after.size }).toEqual({ inode: grown.ino, size: grown.size });
    await store.close();
    expect(reload(dataDir, 'jobs').queue).toEqual({ 'orders/0': snapshot(1000, unacked.slice(1)) });
  });

  it('grows ahead of need once the state fills more than half its slot', async () => {
    const dataDir = tempDir();
    const store = open(dataDir);
    store.create(stream, new Map([['orders/0', 0]]));
    const file = stateFile(dataDir, 'audit');
    const slotBytes = slotBytesOf(file);
    const offsets = new Map<string, number>();
    for (let p = 0; (p + 1) * 'orders/0000:123456,'.length < slotBytes * 0.6; p++)
      offsets.set(`orders/${p.toString().padStart(4, '0')}`, 123456);
    await store.writeOffsets('audit', offsets);
    expect(slotBytesOf(file)).toBeGreaterThan(slotBytes);
    await store.close();
    expect(reload(dataDir, 'audit').offsets).toEqual(Object.fromEntries(offsets));
  });

  it('goes on writing in place with not one byte free; only growth fails, with STORAGE_FULL', async (context) => {
    const dataDir = tempDir();
    const unmount = mountTmpfs(dataDir, 1024 * 1024);
    if (typeof unmount === 'string') {
      context.skip();
      return;
    }
    try {
      const store = open(dataDir);
      store.create(queue, new Map([['orders/0', 0]]));
      store.create(stream, new Map([['orders/0', 0]]));
      fillDisk(path.join(dataDir, 'rest'));
      for (let offset = 1; offset <= 20; offset++) {
        await store.writeOffsets('audit', new Map([['orders/0', offset]]));
        await store.writeQueue('jobs', { 'orders/0': snapshot(offset + 1, [[offset, 1, null]]) });
      }
      // Past half its slot, the file would grow early; on a full disk the state still goes in place.
      const file = stateFile(dataDir, 'jobs');
      const slotBytes = slotBytesOf(file);
      const unacked = Array.from({ length: 100 }, (_, i) => [i, 1, 'x'.repeat(400)] as const);
      await store.writeQueue('jobs', { 'orders/0': snapshot(100, unacked) });
      expect(slotBytesOf(file)).toBe(slotBytes);
      await store.writeQueue('jobs', { 'orders/0': snapshot(21, [[20, 1, null]]) });
      const huge = Array.from({ length: 200 }, (_, i) => [i, 1, 'x'.repeat(1000)] as const);
      await expect(store.writeQueue('jobs', { 'orders/0': snapshot(500, huge) })).rejects.toMatchObject({
        errorName: 'STORAGE_FULL',
      });
      expect(fs.readdirSync(path.join(dataDir, 'subscriptions', 'jobs')).sort()).toEqual([
        STATE_FILE,
        'subscription.json',
      ]);
      await store.writeOffsets('audit', new Map([['orders/0', 21]])); // still in place
      await store.close();
      expect(reload(dataDir, 'audit').offsets).toEqual({ 'orders/0': 21 });
      expect(reload(dataDir, 'jobs').queue).toEqual({ 'orders/0': snapshot(21, [[20, 1, null]]) });
    } finally {
      await Promise.all(opened.splice(0).map((store) => store.close()));
      unmount();
    }
  });

  it('rejects writes after close with SHUTTING_DOWN, and of an unknown subscription with SUBSCRIPTION_NOT_FOUND', async () => {
    const store = open(tempDir());
    store.create(stream, new Map([['orders/0', 0]]));
    await expect(store.writeOffsets('nope', new Map())).rejects.toMatchObject({
      errorName: 'SUBSCRIPTION_NOT_FOUND',
    });
    await store.close();
    await expect(store.writeOffsets('audit', new Map([['orders/0', 1]]))).rejects.toMatchObject({
      errorName: 'SHUTTING_DOWN',
    });
  });

  it("never lets a deleted subscription's write under way land in a new subscription of the same name", async () => {
    const dataDir = tempDir();
    const store = open(dataDir);
    store.create(stream, new Map([['orders/0', 0]]));
    // The first write opens the file by its path; with libuv's pool busy, it opens only after the
    // name was deleted and created again.
    const release = occupyThreadPool(tempDir());
    // Caught at once: it rejects (SHUTTING_DOWN) while release() is awaited.
    const writing = store.writeOffsets('audit', new Map([['orders/0', 999]])).catch(() => undefined);
    store.delete('audit');
    store.create(stream, new Map([['orders/0', 7]]));
    await release();
    await writing;
    await store.close();
    const reloaded = open(dataDir).load();
    expect(reloaded.map((s) => [s.definition.name, s.offsets.get('orders/0')])).toEqual([['audit', 7]]);
  });

  it('deletes a subscription with its state file while a write is under way', async () => {
    const dataDir = tempDir();
    const store = open(dataDir);
    store.create(stream, new Map([['orders/0', 0]]));
    const writing = store.writeOffsets('audit', new Map([['orders/0', 3]]));
    store.delete('audit');
    await writing.catch(() => undefined);
    expect(fs.readdirSync(path.join(dataDir, 'subscriptions'))).toEqual([]);
    await expect(store.writeOffsets('audit', new Map())).rejects.toMatchObject({
      errorName: 'SUBSCRIPTION_NOT_FOUND',
    });
  });
});
