/**
 * Local services a bench test needs (NATS, Redis, a `redis-server` binary): whether each is
 * there, and the rule the browser test follows — skip with the reason printed, unless
 * EDDY_REQUIRE_SERVICES=1 (CI), where a missing service fails the suite instead.
 */
import { spawnSync } from 'node:child_process';
import net from 'node:net';

/** Whether something accepts TCP connections on 127.0.0.1:`port` within `timeoutMs`. */
export function listening(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Whether `command --version` runs. */
export function installed(command: string): boolean {
  return spawnSync(command, ['--version'], { stdio: 'ignore' }).status === 0;
}

/** `available`, after printing why a suite is skipped, or throwing when services are required. */
export function serviceOrSkip(available: boolean, what: string, reason: string): boolean {
  if (available) return true;
  if (process.env['EDDY_REQUIRE_SERVICES'] === '1')
    throw new Error(`${reason}; EDDY_REQUIRE_SERVICES=1 requires it`);
  console.error(`skipping ${what}: ${reason}`);
  return false;
}
