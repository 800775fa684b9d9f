/**
 * `eddy serve` in a child process for the hostile-input checks: like
 * test/helpers/serve.ts, but with a config file (small topic segments, a
 * chosen maxFrameBytes), and with what these checks read from outside the
 * broker: its memory from /proc/<pid>/status, /healthz, and the event-loop
 * delay it exports on /metrics.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach } from 'vitest';
import type { BrokerConfig } from '../../../src/server/index.js';
import { cliMain } from '../../helpers/serve.js';

/**
 * Fresh directories on tmpfs (/dev/shm) when there is one, else under the OS temp dir; removed
 * after the test. On a disk, the fsyncs and fallocates of the topics and commits a fuzz run
 * creates stall the broker's event loop for tens to hundreds of milliseconds each
 * (docs/reliability.md), which would measure the disk rather than the parser.
 */
export function useMemoryTempDirs(prefix: string): () => string {
  const created: string[] = [];
  afterEach(() => {
    for (const dir of created.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });
  const root = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  return () => {
    const dir = fs.mkdtempSync(path.join(root, `eddy-${prefix}-`));
    created.push(dir);
    return dir;
  };
}

export interface BrokerProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** Everything it printed so far. */
  output(): string;
  /** True while the process runs. */
  alive(): boolean;
}

/** Starts `eddy serve --config <dataDir>/../config.json`; killed with SIGKILL after the test. */
export function useBrokerProcess(): (dataDir: string, config?: BrokerConfig) => Promise<BrokerProcess> {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
  });
  return async (dataDir, config = {}) => {
    const configFile = path.join(dataDir, 'broker-config.json');
    fs.mkdirSync(dataDir, { recursive: true });
    fs.writeFileSync(configFile, JSON.stringify(config));
    const child = spawn(
      process.execPath,
      [cliMain, 'serve', '--port', '0', '--data', path.join(dataDir, 'data'), '--config', configFile],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(child);
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-64 * 1024)));
    child.stderr?.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-64 * 1024)));
    const deadline = Date.now() + 15_000;
    for (;;) {
      const url = /listening on (http:\/\/\S+)/.exec(output)?.[1];
      if (url)
        return { url, child, output: () => output, alive: () => child.exitCode === null && !child.killed };
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`eddy serve did not start: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
}

export interface Memory {
  /** Resident set, bytes (anonymous + file-backed + shared). */
  readonly rssBytes: number;
  /** Anonymous resident memory: the heap, buffers, native allocations. */
  readonly anonBytes: number;
  /** File-backed resident memory: the program, and the mapped log segments on a disk. */
  readonly fileBytes: number;
  /** Shared memory: the mapped log segments when the data directory is on tmpfs. */
  readonly shmemBytes: number;
}

/** The process's resident memory from /proc/<pid>/status. */
export function memoryOf(pid: number): Memory {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return {
    rssBytes: kib('VmRSS') * 1024,
    anonBytes: kib('RssAnon') * 1024,
    fileBytes: kib('RssFile') * 1024,
    shmemBytes: kib('RssShmem') * 1024,
  };
}

/** CPU time the process has used so far (user + system), in seconds (/proc/<pid>/stat, 100 ticks a second). */
export function cpuSecondsOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export const mib = (bytes: number): number => Math.round((bytes / 1024 / 1024) * 10) / 10;

/** GET /healthz: the status code, 0 when the request fails. */
export async function healthStatus(url: string): Promise<number> {
  try {
    const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5000) });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return 0;
  }
}

export interface EventLoopDelay {
  readonly p99Ms: number;
  readonly maxMs: number;
}

/**
 * The broker's event-loop delay since the previous scrape (prom-client's
 * default metrics, which reset their histogram on every collection).
 */
export async function eventLoopDelay(url: string): Promise<EventLoopDelay> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const seconds = (name: string): number =>
    Number(new RegExp(`^eddy_nodejs_eventloop_lag_${name}_seconds (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { p99Ms: seconds('p99') * 1000, maxMs: seconds('max') * 1000 };
}
