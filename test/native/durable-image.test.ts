import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../src/native/binding.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const tempDir = useTempDirs('durable-image');

afterEach(() => {
  native.stopDurableImage();
  native.clearFaults();
});

/** A root with the model running on it, and a way to cut the power (copy the image) at any moment. */
function imaged(): { root: string; powerCut: (seed?: number) => string } {
  const base = tempDir();
  const root = path.join(base, 'root');
  fs.mkdirSync(root);
  fs.writeFileSync(path.join(root, 'old'), 'there before');
  const image = path.join(base, 'image');
  native.startDurableImage(root, image);
  let cuts = 0;
  return {
    root,
    powerCut: (seed = 1) => {
      const after = path.join(base, `after-${cuts++}`);
      native.copyDurableImage(image, after, seed);
      return after;
    },
  };
}

describe('native > durable image (the power-loss model)', () => {
  it('keeps what was there at the start, and of a file only the ranges a flush made durable', () => {
    const { root, powerCut } = imaged();
    const file = new native.MappedFile(path.join(root, 'a'), 8192, true);
    native.syncDirectory(root);
    const bytes = new Uint8Array(file.buffer());
    bytes.fill(1, 0, 8192);
    file.flush(4096 + 100, 6000); // durable: [4096, 6000), from the page the range starts in
    bytes.fill(2, 0, 8192); // never flushed
    const after = powerCut();
    expect(fs.readFileSync(path.join(after, 'old'), 'utf8')).toBe('there before');
    const durable = fs.readFileSync(path.join(after, 'a'));
    expect(durable.length).toBe(8192);
    expect([durable[4095], durable[4096], durable[5999], durable[6000], durable[8191]]).toEqual([
      0, 1, 1, 0, 0,
    ]);
    file.close();
  });

  it('makes a created, renamed or removed name durable only at its directory fsync, and a file keeps its bytes across a rename', () => {
    const { root, powerCut } = imaged();
    const file = new native.MappedFile(path.join(root, 'new'), 4096, true);
    new Uint8Array(file.buffer()).fill(7);
    file.flush(0, 4096);
    fs.writeFileSync(path.join(root, 'written'), 'never synced');
    expect(fs.readdirSync(powerCut()).sort()).toEqual(['old']);
    native.syncDirectory(root);
    fs.renameSync(path.join(root, 'new'), path.join(root, 'renamed'));
    fs.rmSync(path.join(root, 'old'));
    const beforeSync = powerCut();
    expect(fs.readdirSync(beforeSync).sort()).toEqual(['new', 'old', 'written']);
    // Named durably, but its bytes were never synced.
    expect(fs.readFileSync(path.join(beforeSync, 'written')).length).toBe(0);
    native.syncDirectory(root);
    const afterSync = powerCut();
    expect(fs.readdirSync(afterSync).sort()).toEqual(['renamed', 'written']);
    expect(fs.readFileSync(path.join(afterSync, 'renamed')).every((byte) => byte === 7)).toBe(true);
    file.close();
  });

  it('makes nothing durable for a flush that failed', () => {
    const { root, powerCut } = imaged();
    const file = new native.MappedFile(path.join(root, 'a'), 4096, true);
    native.syncDirectory(root);
    new Uint8Array(file.buffer()).fill(3);
    native.injectFault('msync', 'EIO', 0);
    expect(() => file.flush(0, 4096)).toThrow(/EIO/);
    expect(fs.readFileSync(path.join(powerCut(), 'a')).length).toBe(0);
    file.close();
  });

  it('tears a sync the power failed in by 512-byte sector, the same way for the same seed', () => {
    const base = tempDir();
    const root = path.join(base, 'root');
    const image = path.join(base, 'image');
    fs.mkdirSync(root);
    const binding = pathToFileURL(
      path.join(
        path.dirname(fileURLToPath(import.meta.url)),
        '..',
        '..',
        'dist',
        'src',
        'native',
        'binding.js',
      ),
    ).href;
    // Sync 1 makes the name durable; the power fails in sync 2, the flush of 8 KiB of 0xab.
    const script = `import { native } from ${JSON.stringify(binding)};
      native.startDurableImage(${JSON.stringify(root)}, ${JSON.stringify(image)}, 2);
      const file = new native.MappedFile(${JSON.stringify(path.join(root, 'a'))}, 8192, true);
      native.syncDirectory(${JSON.stringify(root)});
      new Uint8Array(file.buffer()).fill(0xab);
      file.flush(0, 8192);`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(child.signal, child.stderr).toBe('SIGKILL');
    const sectors = (seed: number): string => {
      const after = path.join(base, `after-${seed}-${fs.readdirSync(base).length}`);
      const copied = native.copyDurableImage(image, after, seed);
      expect(copied).toMatchObject({ inFlightSyncs: 1, files: 1 });
      expect(copied.sectorsKept + copied.sectorsLost).toBe(16);
      const bytes = fs.readFileSync(path.join(after, 'a'));
      if (bytes.length === 0) return '0'.repeat(16); // no sector made it, nor the size
      return Array.from({ length: 16 }, (_, sector) => {
        const part = bytes.subarray(sector * 512, sector * 512 + 512);
        if (part.every((byte) => byte === 0xab)) return '1';
        if (part.every((byte) => byte === 0)) return '0';
        return 'x';
      }).join('');
    };
    const patterns = [1, 2, 3, 4, 5, 6].map(sectors);
    expect(patterns.join('')).not.toMatch(/x/);
    expect(new Set(patterns).size).toBeGreaterThan(1);
    expect(sectors(3)).toBe(patterns[2]);
  });

  it('refuses an image inside its root, a second image, and a copy of an image that broke', () => {
    const { root } = imaged();
    expect(() => native.startDurableImage(root, path.join(tempDir(), 'other'))).toThrow(/already running/);
    native.stopDurableImage();
    expect(() => native.startDurableImage(root, path.join(root, 'image'))).toThrow(/must not contain/);
    // A file mapped while no image ran cannot be named: its flush breaks the image, which then says so.
    const early = new native.MappedFile(path.join(root, 'early'), 4096, true);
    const image = path.join(tempDir(), 'image');
    native.startDurableImage(root, image);
    early.flush(0, 4096);
    expect(() => native.copyDurableImage(image, path.join(tempDir(), 'after'), 1)).toThrow(
      /mapped before the image started/,
    );
    early.close();
  });
});
