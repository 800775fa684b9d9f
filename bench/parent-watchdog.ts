/**
 * Preloaded (`node --import`) into the broker process that the broker benchmark
 * forks. If the benchmark dies without stopping the broker (killed, crashed),
 * its end of the IPC channel closes; the broker then drains and exits as it
 * does on SIGTERM, so no broker outlives its benchmark, and the temp data dir
 * named in `EDDY_BENCH_ORPHAN_DIR` is removed on the way out, since nobody else
 * is left to remove it. The channel is unref'd so that it does not keep a
 * broker that has closed from exiting.
 */
import fs from 'node:fs';

process.channel?.unref();
process.once('disconnect', () => {
  const dir = process.env['EDDY_BENCH_ORPHAN_DIR'];
  if (dir !== undefined && dir !== '')
    process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  process.kill(process.pid, 'SIGTERM');
});
