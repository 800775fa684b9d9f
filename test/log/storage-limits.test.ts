import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PartitionLog, StorageErrorCode, isStorageError } from '../../src/log/index.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import { payloadFor, readAll } from './helpers.js';

const tempDir = useTempDirs('limits');
const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

/** Mounts a tmpfs of `sizeBytes` on a fresh directory, or returns why it cannot (mounting needs root). */
function mountTinyFilesystem(sizeBytes: number): { dir: string; unmount: () => void } | string {
  const dir = tempDir();
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir], {
    encoding: 'utf8',
  });
  if (mounted.status !== 0)
    return `cannot mount a tmpfs here (${(mounted.stderr || mounted.error?.message || '').trim()})`;
  // Lazy: mappings of closed segments live until garbage-collected and keep the mount busy.
  return { dir, unmount: () => execFileSync('umount', ['--lazy', dir]) };
}

describe('log > storage limits', () => {
  it('reports a real full disk as STORAGE_FULL, keeps serving reads, and resumes when space is freed', async (context) => {
    const filesystem = mountTinyFilesystem(1024 * 1024);
    if (typeof filesystem === 'string') {
      console.warn(`skipped: ${filesystem}`);
      context.skip();
      return;
    }
    try {
      const dir = path.join(filesystem.dir, 'partition');
      const log = await PartitionLog.open(dir, {
        segmentBytes: 200 * 1024,
        flushPolicy: 'always',
        retentionBytes: 1,
      });
      let appended = 0;
      let failure: unknown = null;
      while (failure === null && appended < 10_000) {
        await log.append(payloadFor(appended, 10_000), { recordCount: 1 }).then(
          () => appended++,
          (error: unknown) => (failure = error),
        );
      }
      expect(isStorageError(failure, StorageErrorCode.STORAGE_FULL)).toBe(true);
      expect(appended).toBeGreaterThan(40);
      expect(log.state.kind).toBe('open');
      const lastIntact = (): boolean => {
        const stored = readAll(log);
        return (
          stored.length === appended &&
          Buffer.compare(stored.at(-1)!.payload, payloadFor(appended - 1, 10_000)) === 0
        );
      };
      expect(lastIntact()).toBe(true);
      // Freeing space (retention drops closed segments) lets appends resume.
      expect((await log.applyRetention()).deletedSegments).toBeGreaterThan(0);
      // A deleted segment's blocks are released when its last mapping goes, once its buffers are collected.
      for (let i = 0; i < 3; i++) {
        (globalThis as { gc?: () => void }).gc?.();
        await new Promise((resolve) => setImmediate(resolve));
      }
      await log.append(payloadFor(appended, 10_000), { recordCount: 1 });
      expect(log.endOffset).toBe(appended + 1);
      await log.close();
    } finally {
      filesystem.unmount();
    }
  });

  it('reports a segment over the file size limit (RLIMIT_FSIZE) as FILE_TOO_LARGE and stays readable', () => {
    const dir = tempDir();
    const child = path.join(fixtures, 'append-past-file-size-limit.mjs');
    // ulimit -f counts 1 KiB blocks: 512 KiB, between the two segment sizes.
    const output = execFileSync(
      'bash',
      ['-c', `ulimit -f 512 && exec "${process.execPath}" "${child}" "${dir}" ${256 * 1024} ${1024 * 1024}`],
      { encoding: 'utf8' },
    );
    const result = JSON.parse(output) as { code: string; errno: string; endOffset: number; readable: number };
    expect(result.code).toBe(StorageErrorCode.FILE_TOO_LARGE);
    expect(result.errno).toBe('EFBIG');
    expect(result.endOffset).toBeGreaterThan(10);
    expect(result.readable).toBe(result.endOffset);
    expect(fs.readdirSync(dir).filter((name) => name.endsWith('.log')).length).toBeGreaterThan(0);
  });
});
