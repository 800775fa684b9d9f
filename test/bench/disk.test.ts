import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { describeDisk } from '../../bench/disk.js';

/** What `df` says a directory is on: its filesystem type and the source mounted. */
function df(dir: string): { fsType: string; source: string } {
  const [, line] = execFileSync('df', ['--output=fstype,source', dir], { encoding: 'utf8' })
    .trim()
    .split('\n');
  const [fsType, source] = (line ?? '').trim().split(/\s+/);
  return { fsType: fsType ?? '', source: source ?? '' };
}

describe('bench > disk', () => {
  it('names the filesystem and the device a directory is on, as df does', () => {
    for (const dir of [os.tmpdir(), '/dev/shm', '/proc']) {
      const { fsType, source } = df(dir);
      expect(describeDisk(dir)).toMatch(new RegExp(`^${fsType} on ${source}( \\(|$)`));
    }
  });

  it("adds a block device's driver and rotational flag from /sys", () => {
    const { source } = df(os.tmpdir());
    if (!source.startsWith('/dev/')) return; // the temp dir is on no block device here: nothing to read
    expect(describeDisk(os.tmpdir())).toMatch(/ \((\S+, )?queue\/rotational [01]\)$/);
  });

  it('says unknown for a directory that does not exist', () => {
    expect(describeDisk('/no/such/dir')).toBe('unknown');
  });
});
