/**
 * The appending child of the kill -9 checks (fixtures/append-until-killed.mjs, run from dist/):
 * started on a log directory, killed with SIGKILL — by the caller after a delay, or by itself at
 * an injected step of a roll or a retention delete — and what it had acknowledged by then.
 * Used by test/log/kill-nine.test.ts and test/reliability/log-crash-roll.test.ts.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { payloadFor } from './fixtures/payload.mjs';

export const appenderPath = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  'fixtures',
  'append-until-killed.mjs',
);

/** One append the child's log acknowledged (under the `always` policy: durable). */
export interface Ack {
  readonly baseOffset: number;
  readonly lastOffset: number;
  /** The payload is `ackedPayload(ack)`. */
  readonly seed: number;
}

/** The payload the child appended for `ack`. */
export function ackedPayload(ack: Ack): Uint8Array {
  return payloadFor(ack.seed, 100 + (ack.seed % 3000));
}

export interface AppenderOptions {
  readonly segmentBytes: number;
  /** Appends the child keeps in flight. */
  readonly inFlight: number;
  /** The caller's SIGKILL, this long after the child opened the log. */
  readonly killAfterMs: number;
  /** Retention, run by the log's maintenance timer every `maintenanceIntervalMs`. */
  readonly retentionBytes?: number;
  readonly retentionMs?: number;
  readonly maintenanceIntervalMs?: number;
  /**
   * The child kills itself right before or after its `call`-th `fs.renameSync` (a roll renames
   * prepared files into place) or `fs.rmSync` (retention unlinks a segment's files) of a segment file.
   */
  readonly crashAt?: {
    readonly operation: 'renameSync' | 'rmSync';
    readonly call: number;
    readonly when: 'before' | 'after';
  };
}

export interface AppenderRun {
  readonly acks: Ack[];
  /** Start offsets the child saw retention move its log to, in order. */
  readonly starts: number[];
  /** Where the child killed itself (`rmSync after …/00000000000000000042.log`), or null if the caller killed it. */
  readonly crashedAt: string | null;
}

/** Runs the child until it is killed with SIGKILL; rejects if it exits any other way. */
export function runAppender(dir: string, options: AppenderOptions): Promise<AppenderRun> {
  const { segmentBytes, inFlight, killAfterMs, ...extra } = options;
  const args = [appenderPath, dir, String(segmentBytes), String(inFlight)];
  if (Object.keys(extra).length > 0) args.push(JSON.stringify(extra));
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const run = { acks: [] as Ack[], starts: [] as number[], crashedAt: null as string | null };
    let buffered = '';
    let stderr = '';
    let timer: NodeJS.Timeout | null = null;
    proc.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const [kind, a, b, c] = line.split(' ');
        if (kind === 'ack') run.acks.push({ baseOffset: Number(a), lastOffset: Number(b), seed: Number(c) });
        if (kind === 'start') run.starts.push(Number(a));
        if (kind === 'crash') run.crashedAt = `${a} ${b} ${c}`;
        if (kind === 'open' && timer === null) timer = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
      }
    });
    proc.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    proc.on('error', reject);
    // 'close', not 'exit': every line the child wrote has been read by then.
    proc.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (signal !== 'SIGKILL') reject(new Error(`child exited with ${code}: ${stderr}`));
      else resolve(run);
    });
  });
}
