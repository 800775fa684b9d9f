/**
 * `eddy serve` as a child process (the built CLI), for suites that need a
 * broker they can kill: started on a free port, killed with SIGKILL after each
 * test if still running.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { afterEach } from 'vitest';

export const cliMain = path.resolve('dist/src/cli/main.js');

export interface ServedBroker {
  readonly url: string;
  readonly server: ChildProcess;
  /** Everything it printed so far. */
  output(): string;
}

/** Starts `eddy serve` on `dataDir`, with `args` added to its command line (e.g. `--config <file>`). */
export function useServe(): (dataDir: string, args?: readonly string[]) => Promise<ServedBroker> {
  const servers: ChildProcess[] = [];
  afterEach(() => {
    for (const server of servers.splice(0)) server.kill('SIGKILL');
  });
  return async (dataDir, args = []) => {
    const server = spawn(process.execPath, [cliMain, 'serve', '--port', '0', '--data', dataDir, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    servers.push(server);
    let output = '';
    server.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    server.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    // A start replays the log past its checkpoint: allow for big logs (soak runs) and a loaded machine.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const url = /listening on (http:\/\/\S+)/.exec(output)?.[1];
      if (url) return { url, server, output: () => output };
      if (Date.now() > deadline || server.exitCode !== null)
        throw new Error(`eddy serve did not start: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
}

const run = promisify(execFile);

/** Runs `eddy <args> --url <url>` to its end: what it printed and its exit code. */
export async function eddy(
  url: string,
  ...args: string[]
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cliMain, ...args, '--url', url], {
      timeout: 20_000,
    });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const failed = error as { stdout: string; stderr: string; code: number };
    return { stdout: failed.stdout, stderr: failed.stderr, code: failed.code };
  }
}
