/**
 * What disk a benchmark's data directory is on, for the results and the tables made from them
 * (issue 6 asks for the machine's cores, CPU model and disk): the filesystem and the device it is
 * mounted from, as `/proc/self/mountinfo` says, and for a block device its driver and its
 * `queue/rotational` flag (from `/sys/class/block`, the whole disk's for a partition). Linux
 * only; elsewhere, or where these files cannot be read, it says so.
 */
import fs from 'node:fs';
import path from 'node:path';

interface Mount {
  readonly point: string;
  readonly fsType: string;
  readonly source: string;
}

/** Mountinfo's escapes (`\040` for a space, …) turned back into characters. */
const unescape = (field: string): string =>
  field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));

/** The mounts of `/proc/self/mountinfo`: field 5 is the mount point; after " - ", type and source. */
function mounts(): Mount[] {
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .flatMap((line) => {
      const [before, after] = line.split(' - ');
      const point = before?.split(' ')[4];
      const [fsType, source] = after?.split(' ') ?? [];
      return point === undefined || fsType === undefined || source === undefined
        ? []
        : [{ point: unescape(point), fsType, source: unescape(source) }];
    });
}

/** The mount `dir` lives on: the last mounted of those with the longest mount point containing it. */
function mountOf(dir: string, all: readonly Mount[]): Mount | undefined {
  const contains = (point: string): boolean =>
    point === '/' || dir === point || dir.startsWith(point.endsWith('/') ? point : `${point}/`);
  let found: Mount | undefined;
  for (const mount of all)
    if (contains(mount.point) && (found === undefined || mount.point.length >= found.point.length))
      found = mount;
  return found;
}

/**
 * What the kernel says of a block device: its driver and its `queue/rotational` flag (a virtual
 * disk usually says 1, as the kernel cannot know), e.g. `virtio_blk, queue/rotational 1`; null
 * when the source is not a block device the kernel lists.
 */
function blockDevice(source: string): string | null {
  if (!source.startsWith('/dev/')) return null;
  try {
    // A partition's directory sits inside its disk's; the queue and the driver belong to the disk.
    let device = fs.realpathSync(path.join('/sys/class/block', path.basename(fs.realpathSync(source))));
    if (!fs.existsSync(path.join(device, 'queue'))) device = path.dirname(device);
    const flag = fs.readFileSync(path.join(device, 'queue', 'rotational'), 'utf8').trim();
    let driver: string | null = null;
    try {
      driver = path.basename(fs.realpathSync(path.join(device, 'device', 'driver')));
    } catch {
      // No driver link (a loop or RAM device): the flag alone.
    }
    return `${driver === null ? '' : `${driver}, `}queue/rotational ${flag}`;
  } catch {
    return null;
  }
}

/** E.g. `ext4 on /dev/vda (virtio_blk, queue/rotational 1)`; `unknown` where the platform does not tell. */
export function describeDisk(dir: string): string {
  try {
    const mount = mountOf(fs.realpathSync(dir), mounts());
    if (mount === undefined) return 'unknown';
    const device = blockDevice(mount.source);
    return `${mount.fsType} on ${mount.source}${device === null ? '' : ` (${device})`}`;
  } catch {
    return 'unknown';
  }
}
