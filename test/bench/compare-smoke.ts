import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { cliMain } from '../helpers/serve.js';

const run = promisify(execFile);

/**
 * The built `eddy bench compare --json` (`dist/`) for a moment: e2e-latency, 100-byte events,
 * 1,000/s for 1 s after 200 ms of warm-up, against `peers`, with `extra` arguments appended.
 * Returns its JSON lines: the run's info first, then one result per peer.
 */
export async function compareSmoke(
  peers: readonly string[],
  extra: readonly string[],
  timeoutMs: number,
): Promise<unknown[]> {
  const { stdout } = await run(
    process.execPath,
    [
      cliMain,
      'bench',
      'compare',
      '--json',
      '--peers',
      peers.join(','),
      '--scenario',
      'e2e-latency',
      '--event-bytes',
      '100',
      '--rates',
      '1000',
      '--duration-ms',
      '1000',
      '--warmup-ms',
      '200',
      ...extra,
    ],
    { timeout: timeoutMs },
  );
  return stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as unknown);
}
