import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { native, type NativeMappedFile } from '../../src/native/binding.js';
import { StorageError } from '../../src/native/errors.js';

const gc = (globalThis as { gc?: () => void }).gc;
const hasProcMaps = fs.existsSync('/proc/self/maps');

let dir: string;
let opened: NativeMappedFile[];

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eddy-native-'));
  opened = [];
});

afterEach(() => {
  native.clearFaults();
  for (const file of opened) file.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

const at = (name: string): string => path.join(dir, name);

function create(name: string, sizeBytes: number): NativeMappedFile {
  const file = new native.MappedFile(at(name), sizeBytes, true);
  opened.push(file);
  return file;
}

function reopen(name: string): NativeMappedFile {
  const file = new native.MappedFile(at(name), 0, false);
  opened.push(file);
  return file;
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

function expectStorageError(error: unknown, fields: Partial<Record<keyof StorageError, unknown>>): void {
  expect(error).toBeInstanceOf(StorageError);
  expect(error).toMatchObject(fields);
}

/** Collects until finalizers of external buffers and wrapped objects have run. */
async function collectGarbage(): Promise<void> {
  for (let i = 0; i < 6; i++) {
    gc?.();
    await nextTurn();
  }
}

/**
 * Lines of /proc/self/maps for files under the test directory (mapped even once
 * deleted). A background thread unmaps shortly after the last owner lets go
 * (Unmapper in native/src/mapping.cc): poll for the count to drop.
 */
function mappingsUnder(directory: string): number {
  return fs
    .readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((line) => line.includes(directory)).length;
}

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('native > MappedFile', () => {
  describe('create', () => {
    it('preallocates the whole file instead of leaving it sparse', () => {
      const file = create('a.log', 1 << 20);
      expect(file.sizeBytes).toBe(1 << 20);
      expect(file.writePosition).toBe(0);
      expect(file.closed).toBe(false);
      const stat = fs.statSync(at('a.log'));
      expect(stat.size).toBe(1 << 20);
      expect(stat.blocks * 512).toBeGreaterThanOrEqual(1 << 20);
    });

    it('creates the file with mode 0644', () => {
      create('a.log', 4096);
      const umask = process.umask();
      expect(fs.statSync(at('a.log')).mode & 0o777).toBe(0o644 & ~umask);
    });

    it('throws ALREADY_EXISTS when the file exists', () => {
      create('a.log', 4096);
      expectStorageError(
        thrown(() => create('a.log', 4096)),
        { code: 'ALREADY_EXISTS', errno: 'EEXIST', syscall: 'open', path: at('a.log') },
      );
    });

    it('rejects a size of zero or a non-integer size', () => {
      expect(() => create('a.log', 0)).toThrow(RangeError);
      expect(() => create('b.log', 1.5)).toThrow(RangeError);
      expect(fs.readdirSync(dir)).toEqual([]);
    });
  });

  describe('open existing', () => {
    it('throws NOT_FOUND for a missing file', () => {
      const error = thrown(() => reopen('missing.log'));
      expectStorageError(error, {
        code: 'NOT_FOUND',
        errno: 'ENOENT',
        syscall: 'open',
        path: at('missing.log'),
      });
      expect((error as Error).message).toBe(
        `open failed for ${at('missing.log')}: No such file or directory (ENOENT)`,
      );
    });

    it('throws STORAGE_ERROR for an empty file', () => {
      fs.writeFileSync(at('empty.log'), '');
      expectStorageError(
        thrown(() => reopen('empty.log')),
        { code: 'STORAGE_ERROR', path: at('empty.log') },
      );
    });

    it('maps the file at its own size, ignoring sizeBytes, and sees earlier data', () => {
      const file = create('a.log', 8192);
      file.append(bytes('persisted'));
      file.flush(0, file.writePosition);
      file.close();
      const again = new native.MappedFile(at('a.log'), 123, false);
      opened.push(again);
      expect(again.sizeBytes).toBe(8192);
      expect(again.writePosition).toBe(0);
      expect(new TextDecoder().decode(new Uint8Array(again.buffer(), 0, 9))).toBe('persisted');
    });
  });

  describe('append', () => {
    it('copies head then body contiguously, advances writePosition and returns the start', () => {
      const file = create('a.log', 4096);
      expect(file.append(bytes('head'), bytes('body'))).toBe(0);
      expect(file.append(bytes('-tail'))).toBe(8);
      expect(file.writePosition).toBe(13);
      expect(new TextDecoder().decode(new Uint8Array(file.buffer(), 0, 13))).toBe('headbody-tail');
    });

    it('honours the byteOffset of subarrays', () => {
      const file = create('a.log', 4096);
      const source = randomBytes(101);
      file.append(source.subarray(3, 50), source.subarray(51, 100));
      const written = new Uint8Array(file.buffer(), 0, 96);
      expect(Buffer.from(written)).toEqual(Buffer.concat([source.subarray(3, 50), source.subarray(51, 100)]));
    });

    it('throws a RangeError past the end and leaves writePosition alone', () => {
      const file = create('a.log', 16);
      file.append(new Uint8Array(10));
      expect(() => file.append(new Uint8Array(4), new Uint8Array(3))).toThrow(RangeError);
      expect(() => file.append(new Uint8Array(7))).toThrow(RangeError);
      expect(file.writePosition).toBe(10);
      expect(file.append(new Uint8Array(3), new Uint8Array(3))).toBe(10);
      expect(file.writePosition).toBe(16);
      expect(file.append(new Uint8Array(0))).toBe(16);
    });

    it('rejects arguments that are not Uint8Arrays with a TypeError', () => {
      const file = create('a.log', 16);
      const append = file.append.bind(file) as (head: unknown, body?: unknown) => number;
      expect(() => append('abc')).toThrow(TypeError);
      expect(() => append(new Uint8Array(1), [1, 2])).toThrow(TypeError);
    });
  });

  describe('appendBatch', () => {
    it('stores the CRC32C of the head without its CRC field followed by the body, in the head and the file', () => {
      const file = create('a.log', 1 << 20);
      file.append(bytes('x'));
      for (const bodyBytes of [0, 10, 4096, 70_000]) {
        const head = randomBytes(64);
        const body = randomBytes(bodyBytes);
        const crcAt = 24;
        const expected = native.crc32c(
          body,
          native.crc32c(head.subarray(crcAt + 4), native.crc32c(head.subarray(0, crcAt), 0)),
        );
        const start = file.appendBatch(head, body, crcAt);
        expect(head.readUInt32LE(crcAt)).toBe(expected);
        const written = Buffer.from(new Uint8Array(file.buffer(), start, head.length + body.length));
        expect(written).toEqual(Buffer.concat([head, body]));
      }
    });

    it('rejects a CRC field outside the head with a RangeError and writes nothing', () => {
      const file = create('a.log', 4096);
      expect(() => file.appendBatch(new Uint8Array(8), new Uint8Array(4), 5)).toThrow(RangeError);
      expect(() => file.appendBatch(new Uint8Array(8), new Uint8Array(4), -1)).toThrow(RangeError);
      expect(file.writePosition).toBe(0);
    });
  });
  describe('writePosition', () => {
    it('accepts any integer from 0 to sizeBytes', () => {
      const file = create('a.log', 4096);
      file.writePosition = 4096;
      expect(file.writePosition).toBe(4096);
      file.writePosition = 100;
      expect(file.append(bytes('x'))).toBe(100);
    });

    it('throws a RangeError outside the mapping or for a non-integer', () => {
      const file = create('a.log', 4096);
      expect(() => (file.writePosition = 4097)).toThrow(RangeError);
      expect(() => (file.writePosition = -1)).toThrow(RangeError);
      expect(() => (file.writePosition = 1.5)).toThrow(RangeError);
      expect(file.writePosition).toBe(0);
    });
  });

  describe('buffer', () => {
    it('reflects appended bytes and writes through to the file', () => {
      const file = create('a.log', 4096);
      const view = new Uint8Array(file.buffer());
      expect(view.byteLength).toBe(4096);
      file.append(bytes('abc'));
      expect(Array.from(view.subarray(0, 3))).toEqual([97, 98, 99]);
      view[3] = 100;
      file.flush(0, 4);
      expect(fs.readFileSync(at('a.log')).subarray(0, 4).toString()).toBe('abcd');
    });

    it('returns a new buffer over the same memory on each call', () => {
      const file = create('a.log', 4096);
      const first = new Uint8Array(file.buffer());
      const second = new Uint8Array(file.buffer());
      expect(first.buffer).not.toBe(second.buffer);
      first[7] = 42;
      expect(second[7]).toBe(42);
    });

    it('stays readable after close(), unlink and garbage collection', async () => {
      const file = create('a.log', 65536);
      const content = randomBytes(1000);
      file.append(content);
      const view = new Uint8Array(file.buffer(), 0, 1000);
      file.close();
      fs.unlinkSync(at('a.log'));
      await collectGarbage();
      expect(Buffer.from(view)).toEqual(content);
    });
  });

  describe('zero', () => {
    it('writes zero bytes over [from, to)', () => {
      const file = create('a.log', 4096);
      file.append(new Uint8Array(100).fill(7));
      file.zero(10, 20);
      const view = new Uint8Array(file.buffer(), 0, 100);
      expect(view[9]).toBe(7);
      expect(Array.from(view.subarray(10, 20))).toEqual(new Array(10).fill(0));
      expect(view[20]).toBe(7);
      file.zero(5, 5);
      expect(view[5]).toBe(7);
    });

    it('throws a RangeError for a range outside the mapping', () => {
      const file = create('a.log', 4096);
      expect(() => file.zero(0, 4097)).toThrow(RangeError);
      expect(() => file.zero(20, 10)).toThrow(RangeError);
      expect(() => file.zero(-1, 10)).toThrow(RangeError);
    });
  });

  describe('flush', () => {
    it('syncs unaligned ranges, the whole file and empty ranges', async () => {
      const file = create('a.log', 3 * 4096 + 100);
      file.append(randomBytes(9000));
      file.flush(4097, 9000);
      file.flush(0, file.sizeBytes);
      file.flush(50, 50);
      await expect(file.flushAsync(4097, file.sizeBytes)).resolves.toBeUndefined();
      await expect(file.flushAsync(0, 0)).resolves.toBeUndefined();
    });

    it('throws a RangeError for a range outside the mapping', async () => {
      const file = create('a.log', 4096);
      expect(() => file.flush(0, 4097)).toThrow(RangeError);
      await expect(file.flushAsync(10, 5)).rejects.toThrow(RangeError);
    });

    it('keeps the mapping alive for a flushAsync in progress when closed', async () => {
      const file = create('a.log', 65536);
      file.append(randomBytes(65536));
      const flushed = file.flushAsync(0, 65536);
      file.close();
      await expect(flushed).resolves.toBeUndefined();
    });
  });

  describe('floorEntry', () => {
    it('finds the last u32 key <= key, exact matches included, or -1', () => {
      const file = create('a.idx', 4096);
      const view = new DataView(file.buffer());
      const keys = [10, 20, 30, 0xfffffff0];
      keys.forEach((key, i) => {
        view.setUint32(16 + i * 8, key, true);
        view.setUint32(16 + i * 8 + 4, i * 100, true);
      });
      const floor = (key: number): number => file.floorEntry(16, 8, keys.length, 'u32', key);
      expect(floor(-5)).toBe(-1);
      expect(floor(9)).toBe(-1);
      expect(floor(10)).toBe(0);
      expect(floor(19)).toBe(0);
      expect(floor(20)).toBe(1);
      expect(floor(30)).toBe(2);
      expect(floor(0xffffffef)).toBe(2);
      expect(floor(0xfffffff0)).toBe(3);
      expect(floor(2 ** 40)).toBe(3);
      expect(file.floorEntry(16, 8, 0, 'u32', 100)).toBe(-1);
    });

    it('compares i64 keys as signed, including negative keys', () => {
      const file = create('a.idx', 4096);
      const view = new DataView(file.buffer());
      const keys = [-(2 ** 40), -100n, -5n, 0n, 7n, 2n ** 40n].map(BigInt);
      keys.forEach((key, i) => view.setBigInt64(i * 12, key, true));
      const floor = (key: number): number => file.floorEntry(0, 12, keys.length, 'i64', key);
      expect(floor(-(2 ** 41))).toBe(-1);
      expect(floor(-(2 ** 40))).toBe(0);
      expect(floor(-101)).toBe(0);
      expect(floor(-100)).toBe(1);
      expect(floor(-6)).toBe(1);
      expect(floor(-5)).toBe(2);
      expect(floor(-1)).toBe(2);
      expect(floor(0)).toBe(3);
      expect(floor(6)).toBe(3);
      expect(floor(7)).toBe(4);
      expect(floor(2 ** 40)).toBe(5);
      expect(floor(Number.MAX_SAFE_INTEGER)).toBe(5);
    });

    it('bounds-checks the entries and validates the key type', () => {
      const file = create('a.idx', 4096);
      expect(() => file.floorEntry(0, 8, 513, 'u32', 1)).toThrow(RangeError);
      expect(() => file.floorEntry(8, 8, 512, 'u32', 1)).toThrow(RangeError);
      expect(() => file.floorEntry(4097, 8, 0, 'u32', 1)).toThrow(RangeError);
      expect(() => file.floorEntry(0, 4, 1, 'i64', 1)).toThrow(RangeError);
      expect(() => file.floorEntry(0, 8, 1, 'u64' as 'u32', 1)).toThrow(TypeError);
      expect(() => file.floorEntry(0, 8, 1, 'u32', 0.5)).toThrow(TypeError);
      expect(file.floorEntry(0, 8, 512, 'u32', 1)).toBe(511);
    });
  });

  describe('countEntries', () => {
    function u32Index(entries: [number, number][]): NativeMappedFile {
      const file = create('u32.idx', 64 + 8 * 16);
      const view = new DataView(file.buffer());
      entries.forEach(([key, value], i) => {
        view.setUint32(64 + i * 8, key, true);
        view.setUint32(64 + i * 8 + 4, value, true);
      });
      return file;
    }

    it('stops at the first all-zero entry', () => {
      const file = u32Index([
        [5, 0],
        [6, 100],
        [9, 200],
      ]);
      expect(file.countEntries(64, 8, 16, 'u32')).toBe(3);
    });

    it('counts a leading entry with a zero key or zero value that is not all zero', () => {
      expect(
        u32Index([
          [0, 1],
          [1, 2],
        ]).countEntries(64, 8, 16, 'u32'),
      ).toBe(2);
    });

    it('stops at an entry whose key does not increase', () => {
      const file = u32Index([
        [5, 0],
        [6, 100],
        [6, 150],
        [7, 160],
      ]);
      expect(file.countEntries(64, 8, 16, 'u32')).toBe(2);
    });

    it('stops at an entry whose value does not increase', () => {
      const file = u32Index([
        [5, 10],
        [6, 100],
        [7, 100],
        [8, 160],
      ]);
      expect(file.countEntries(64, 8, 16, 'u32')).toBe(2);
    });

    it('stops at capacity and at the end of the mapping', () => {
      const entries = Array.from({ length: 16 }, (_, i): [number, number] => [i + 1, i * 10]);
      const file = u32Index(entries);
      expect(file.countEntries(64, 8, 5, 'u32')).toBe(5);
      expect(file.countEntries(64, 8, 1000, 'u32')).toBe(16);
      expect(file.countEntries(64 + 8 * 16, 8, 1000, 'u32')).toBe(0);
      expect(() => file.countEntries(64 + 8 * 16 + 1, 8, 1, 'u32')).toThrow(RangeError);
    });

    it('reads i64 keys as signed, with the value at offset 8', () => {
      const file = create('i64.idx', 12 * 8);
      const view = new DataView(file.buffer());
      [-10n, -3n, 4n, 3n].forEach((key, i) => {
        view.setBigInt64(i * 12, key, true);
        view.setUint32(i * 12 + 8, i + 1, true);
      });
      expect(file.countEntries(0, 12, 8, 'i64')).toBe(3);
      expect(() => file.countEntries(0, 8, 8, 'i64')).toThrow(RangeError);
    });
  });

  describe('crc32c', () => {
    it('equals crc32c of the same bytes, continuing from the seed', () => {
      const file = create('a.log', 65536);
      const content = randomBytes(50_000);
      file.append(content);
      expect(file.crc32c(0, 50_000, 0)).toBe(native.crc32c(content, 0));
      expect(file.crc32c(13, 49_001, 0)).toBe(native.crc32c(content.subarray(13, 49_001), 0));
      const head = file.crc32c(0, 100, 0);
      expect(file.crc32c(100, 50_000, head)).toBe(native.crc32c(content, 0));
      expect(file.crc32c(7, 7, 12345)).toBe(12345);
    });

    it('throws a RangeError outside the mapping', () => {
      const file = create('a.log', 4096);
      expect(() => file.crc32c(0, 4097, 0)).toThrow(RangeError);
      expect(() => file.crc32c(0, 10, -1)).toThrow(RangeError);
    });
  });

  describe('close', () => {
    it('is idempotent and makes every later call throw CLOSED', async () => {
      const file = create('a.log', 4096);
      file.close();
      file.close();
      expect(file.closed).toBe(true);
      const calls: (() => unknown)[] = [
        () => file.buffer(),
        () => file.append(new Uint8Array(1)),
        () => file.zero(0, 1),
        () => file.flush(0, 1),
        () => file.floorEntry(0, 8, 1, 'u32', 1),
        () => file.countEntries(0, 8, 1, 'u32'),
        () => file.crc32c(0, 1, 0),
        () => (file.writePosition = 0),
      ];
      for (const call of calls) expectStorageError(thrown(call), { code: 'CLOSED', path: at('a.log') });
      expectStorageError(await rejection(file.flushAsync(0, 1)), { code: 'CLOSED' });
    });
  });

  describe('append through the descriptor', () => {
    it('writes appends of 4 KiB and more with pwritev, visible through the mapping and the file', () => {
      const file = create('a.log', 1024 * 1024);
      const head = randomBytes(56);
      const body = randomBytes(100_000);
      file.writePosition = 64;
      expect(file.append(head, body)).toBe(64);
      const view = new Uint8Array(file.buffer());
      expect(Buffer.compare(view.subarray(64, 120), head)).toBe(0);
      expect(Buffer.compare(view.subarray(120, 100_120), body)).toBe(0);
      const onDisk = fs.readFileSync(at('a.log')).subarray(64, 100_120);
      expect(Buffer.compare(onDisk, Buffer.concat([head, body]))).toBe(0);
    });

    it('still appends, through the mapping, after closeDescriptor()', () => {
      const file = create('a.log', 1024 * 1024);
      file.closeDescriptor();
      const body = randomBytes(50_000);
      expect(file.append(body)).toBe(0);
      expect(Buffer.compare(new Uint8Array(file.buffer()).subarray(0, 50_000), body)).toBe(0);
      file.flush(0, 50_000);
    });
  });

  describe('preallocateAsync', () => {
    it('creates a file of real blocks, zero-filled, off the JS thread', async () => {
      await native.preallocateAsync(at('next.log'), 1024 * 1024);
      const stat = fs.statSync(at('next.log'));
      expect(stat.size).toBe(1024 * 1024);
      expect(stat.blocks * 512).toBeGreaterThanOrEqual(1024 * 1024);
      expect(fs.readFileSync(at('next.log')).every((byte) => byte === 0)).toBe(true);
    });

    it('refuses to replace an existing file with ALREADY_EXISTS', async () => {
      fs.writeFileSync(at('next.log'), 'keep');
      await expect(native.preallocateAsync(at('next.log'), 4096)).rejects.toMatchObject({
        code: 'ALREADY_EXISTS',
      });
      expect(fs.readFileSync(at('next.log'), 'utf8')).toBe('keep');
    });

    it('rejects an injected ENOSPC with STORAGE_FULL and leaves no file behind', async () => {
      native.injectFault('fallocate', 'ENOSPC', 0);
      await expect(native.preallocateAsync(at('next.log'), 4096)).rejects.toMatchObject({
        code: 'STORAGE_FULL',
        syscall: 'fallocate',
      });
      expect(fs.existsSync(at('next.log'))).toBe(false);
    });

    it('rejects a zero size with RangeError', () => {
      expect(() => native.preallocateAsync(at('next.log'), 0)).toThrow(RangeError);
    });
  });

  describe('syncDirectory', () => {
    it('fsyncs a directory', () => {
      expect(() => native.syncDirectory(dir)).not.toThrow();
    });

    it('fsyncs a directory off the JS thread with syncDirectoryAsync', async () => {
      await expect(native.syncDirectoryAsync(dir)).resolves.toBeUndefined();
    });

    it('rejects syncDirectoryAsync with a typed error, injected EIO included', async () => {
      await expect(native.syncDirectoryAsync(at('missing'))).rejects.toMatchObject({ code: 'NOT_FOUND' });
      native.injectFault('fsync', 'EIO', 0);
      await expect(native.syncDirectoryAsync(dir)).rejects.toMatchObject({
        code: 'IO_ERROR',
        syscall: 'fsync',
      });
    });

    it('throws NOT_FOUND for a missing directory', () => {
      expectStorageError(
        thrown(() => native.syncDirectory(at('missing'))),
        { code: 'NOT_FOUND', errno: 'ENOENT', syscall: 'open' },
      );
    });
  });

  describe('fault injection', () => {
    it('an injected ENOSPC on fallocate throws STORAGE_FULL and removes the file', () => {
      native.injectFault('fallocate', 'ENOSPC', 0);
      const error = thrown(() => create('a.log', 4096));
      expectStorageError(error, {
        code: 'STORAGE_FULL',
        errno: 'ENOSPC',
        syscall: 'fallocate',
        path: at('a.log'),
        retriable: true,
      });
      expect((error as Error).message).toBe(
        `fallocate failed for ${at('a.log')}: No space left on device (ENOSPC)`,
      );
      expect(fs.existsSync(at('a.log'))).toBe(false);
    });

    it('an injected ENOMEM on mmap throws OUT_OF_MEMORY and removes the created file', () => {
      native.injectFault('mmap', 'ENOMEM', 0);
      expectStorageError(
        thrown(() => create('a.log', 4096)),
        { code: 'OUT_OF_MEMORY', errno: 'ENOMEM', syscall: 'mmap' },
      );
      expect(fs.existsSync(at('a.log'))).toBe(false);
    });

    it('an injected EIO on msync throws IO_ERROR, then append and flush throw FSYNC_FAILED', () => {
      const file = create('a.log', 4096);
      file.append(bytes('abc'));
      native.injectFault('msync', 'EIO', 0);
      expectStorageError(
        thrown(() => file.flush(0, 3)),
        { code: 'IO_ERROR', errno: 'EIO', syscall: 'msync' },
      );
      native.clearFaults();
      expectStorageError(
        thrown(() => file.append(bytes('d'))),
        { code: 'FSYNC_FAILED', errno: 'EIO' },
      );
      expectStorageError(
        thrown(() => file.flush(0, 3)),
        { code: 'FSYNC_FAILED' },
      );
      expectStorageError(
        thrown(() => file.flush(0, 0)),
        { code: 'FSYNC_FAILED' },
      );
      expect(file.writePosition).toBe(3);
    });

    it('an injected EIO on msync rejects flushAsync with IO_ERROR, then FSYNC_FAILED', async () => {
      const file = create('a.log', 4096);
      file.append(bytes('abc'));
      native.injectFault('msync', 'EIO', 0);
      expectStorageError(await rejection(file.flushAsync(0, 3)), { code: 'IO_ERROR', errno: 'EIO' });
      native.clearFaults();
      expectStorageError(
        thrown(() => file.append(bytes('d'))),
        { code: 'FSYNC_FAILED' },
      );
      expectStorageError(await rejection(file.flushAsync(0, 3)), { code: 'FSYNC_FAILED' });
      expectStorageError(
        thrown(() => file.flush(0, 3)),
        { code: 'FSYNC_FAILED' },
      );
    });

    it('poisoning is per file: a reopened mapping flushes again', () => {
      const file = create('a.log', 4096);
      native.injectFault('msync', 'EIO', 0);
      expect(() => file.flush(0, 1)).toThrow(StorageError);
      native.clearFaults();
      const other = reopen('a.log');
      expect(() => other.flush(0, 1)).not.toThrow();
    });

    it('lets the first afterCalls calls succeed', () => {
      native.injectFault('open', 'EMFILE', 2);
      create('a.log', 4096);
      create('b.log', 4096);
      expectStorageError(
        thrown(() => create('c.log', 4096)),
        { code: 'TOO_MANY_OPEN_FILES', errno: 'EMFILE', syscall: 'open' },
      );
      expectStorageError(
        thrown(() => reopen('a.log')),
        { code: 'TOO_MANY_OPEN_FILES' },
      );
    });

    it('does not count calls that fail for real', () => {
      create('a.log', 4096);
      native.injectFault('open', 'EMFILE', 1);
      expectStorageError(
        thrown(() => create('a.log', 4096)),
        { code: 'ALREADY_EXISTS' },
      );
      create('b.log', 4096);
      expectStorageError(
        thrown(() => create('c.log', 4096)),
        { code: 'TOO_MANY_OPEN_FILES' },
      );
    });

    it('an injected EIO on fsync makes syncDirectory throw IO_ERROR', () => {
      native.injectFault('fsync', 'EIO', 1);
      native.syncDirectory(dir);
      expectStorageError(
        thrown(() => native.syncDirectory(dir)),
        { code: 'IO_ERROR', errno: 'EIO', syscall: 'fsync', path: dir },
      );
    });

    it('maps the other errno names to their codes', () => {
      const cases: [string, string][] = [
        ['EDQUOT', 'STORAGE_FULL'],
        ['EFBIG', 'FILE_TOO_LARGE'],
        ['EACCES', 'PERMISSION_DENIED'],
        ['EPERM', 'PERMISSION_DENIED'],
        ['EROFS', 'PERMISSION_DENIED'],
        ['ENFILE', 'TOO_MANY_OPEN_FILES'],
        ['EINVAL', 'STORAGE_ERROR'],
        ['E200', 'STORAGE_ERROR'],
      ];
      for (const [errno, code] of cases) {
        native.injectFault('fallocate', errno, 0);
        expectStorageError(
          thrown(() => create('a.log', 4096)),
          { code, errno },
        );
      }
    });

    it('clearFaults restores the real calls', () => {
      native.injectFault('fallocate', 'ENOSPC', 0);
      native.injectFault('msync', 'EIO', 0);
      expect(() => create('a.log', 4096)).toThrow(StorageError);
      native.clearFaults();
      const file = create('a.log', 4096);
      expect(() => file.flush(0, 4096)).not.toThrow();
    });

    it('rejects unknown operations and errno names with a TypeError', () => {
      expect(() => native.injectFault('write' as 'open', 'EIO', 0)).toThrow(TypeError);
      expect(() => native.injectFault('open', 'EWHATEVER', 0)).toThrow(TypeError);
      expect(() => native.injectFault('open', 'EIO', -1)).toThrow(RangeError);
    });
  });

  describe('resource lifetime', () => {
    it.skipIf(!gc || !hasProcMaps)('unmaps once closed and every buffer is collected', async () => {
      const file = create('a.log', 65536);
      const holder: { view: Uint8Array | undefined } = { view: new Uint8Array(file.buffer()) };
      file.close();
      await collectGarbage();
      expect(mappingsUnder(dir)).toBe(1);
      expect(holder.view?.byteLength).toBe(65536);
      holder.view = undefined;
      await collectGarbage();
      await expect.poll(() => mappingsUnder(dir)).toBe(0);
    });

    it.skipIf(!gc || !hasProcMaps)('unmaps when a handle is collected without close()', async () => {
      (() => {
        new native.MappedFile(at('a.log'), 65536, true).append(new Uint8Array(1));
      })();
      await collectGarbage();
      await expect.poll(() => mappingsUnder(dir)).toBe(0);
    });

    it.skipIf(!gc || !hasProcMaps)('leaks no descriptors or mappings over many files', async () => {
      const fds = (): number => fs.readdirSync('/proc/self/fd').length;
      const before = fds();
      for (let i = 0; i < 500; i++) {
        const name = at(`leak-${i}.log`);
        const file = new native.MappedFile(name, 65536, true);
        new Uint8Array(file.buffer())[i] = 1;
        file.close();
        fs.unlinkSync(name);
        if (i % 100 === 99) await collectGarbage();
      }
      await collectGarbage();
      expect(fds()).toBeLessThanOrEqual(before + 2);
      await expect.poll(() => mappingsUnder(dir)).toBe(0);
    });
  });
});
