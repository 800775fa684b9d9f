/**
 * Keeps a `redis-server` of the benchmark's own: forked by the comparison (with
 * `parent-watchdog.js` preloaded and `EDDY_BENCH_ORPHAN_DIR` set to the server's temp dir), it
 * starts `redis-server` on a free loopback port with an append-only file fsynced every second
 * and no snapshots, in that dir, and reports `{type: 'ready', port, pid}`. On SIGTERM, from the
 * benchmark or from the watchdog when the benchmark died, it stops the server (SIGTERM: Redis
 * fsyncs the AOF and exits; SIGKILL if that takes too long) and exits; the watchdog then removes
 * the dir. A server that will not start is reported as `{type: 'failed', message}`.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';

const STOP_TIMEOUT_MS = 10_000;
const START_TIMEOUT_MS = 10_000;
const OUTPUT_TAIL_BYTES = 4096;

export type FromRedisKeeper =
  | { readonly type: 'ready'; readonly port: number; readonly pid: number }
  | { readonly type: 'failed'; readonly message: string };

/** A port nobody listens on now (the kernel's pick for an ephemeral bind, released at once). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address !== null ? resolve(address.port) : reject(),
      );
    });
  });
}

async function main(): Promise<void> {
  const dir = process.env['EDDY_BENCH_ORPHAN_DIR'];
  if (process.send === undefined || dir === undefined || dir === '') {
    process.stderr.write('redis-server.js is forked by eddy bench compare\n');
    process.exit(2);
  }
  const port = await freePort();
  const server = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
      '--dir',
      dir,
      '--save',
      '',
      '--daemonize',
      'no',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-OUTPUT_TAIL_BYTES);
  };
  server.stderr.on('data', keep);
  // Killed with this process whichever way it goes.
  process.on('exit', () => server.kill('SIGKILL'));
  let stopping = false;
  process.once('SIGTERM', () => {
    stopping = true;
    const timer = setTimeout(() => process.exit(0), STOP_TIMEOUT_MS);
    server.once('exit', () => {
      clearTimeout(timer);
      process.exit(0);
    });
    server.kill('SIGTERM');
  });
  const failed = (message: string): void => {
    process.send?.({ type: 'failed', message } satisfies FromRedisKeeper);
    process.exit(1);
  };
  server.once('error', (error) => failed(`redis-server: ${error.message}`));
  server.once('exit', (code, signal) => {
    if (!stopping)
      failed(`redis-server exited (${signal ?? code}): ${output.trim().split('\n').slice(-3).join(' | ')}`);
  });
  const timer = setTimeout(
    () => failed(`redis-server did not start in ${START_TIMEOUT_MS} ms`),
    START_TIMEOUT_MS,
  );
  server.stdout.on('data', (chunk: Buffer) => {
    const before = output;
    keep(chunk);
    if (!before.includes('Ready to accept connections') && output.includes('Ready to accept connections')) {
      clearTimeout(timer);
      process.send?.({ type: 'ready', port, pid: server.pid ?? 0 } satisfies FromRedisKeeper);
    }
  });
}

await main();
