/**
 * Messages between a FilterSandbox (sandbox.ts) and its filter thread
 * (sandbox-worker.ts). The thread handles them one at a time, in order, and
 * answers each `load` and `run` with the job number it came with; the sandbox
 * times the job at the head of that order against its budget.
 */
import type { FilterKind } from './abi.js';
import type { FilterErrorName } from './errors.js';
import type { FilterLimits } from './limits.js';
import type { ModuleMemory } from './module-check.js';
import type { WasmModule } from './webassembly.js';

export interface InstanceSettings {
  readonly kind: FilterKind;
  readonly memory: ModuleMemory;
  readonly limits: FilterLimits;
  /** Stop running a batch's events at the first that fails (the `disable` policy). */
  readonly stopAtFirstFailure: boolean;
}

export type ToWorker =
  | {
      readonly type: 'load';
      readonly job: number;
      /** The number this load of the filter goes by in the thread (an id may be loaded again later). */
      readonly slot: number;
      readonly id: string;
      readonly module: WasmModule;
      readonly settings: InstanceSettings;
    }
  | { readonly type: 'unload'; readonly slot: number }
  | {
      readonly type: 'run';
      readonly job: number;
      readonly slot: number;
      readonly block: Uint8Array;
      readonly compression: 'none' | 'lz4';
    };

export interface WireFailure {
  readonly index: number;
  readonly errorName: FilterErrorName;
  readonly message: string;
}

/** What running one batch gave, before the sandbox applies the failure policy. */
export interface RunReply {
  readonly eventCount: number;
  /** Filters: bit i (byte i >> 3, bit i & 7) set when event i is kept. */
  readonly keep: Uint8Array | null;
  readonly keptCount: number;
  /** Transforms: the output EventBatch, verified. */
  readonly block: Uint8Array | null;
  readonly outputCount: number;
  /** Events whose call failed, each left out of the result. */
  readonly failures: readonly WireFailure[];
  /** Failures came one after another up to the limit (or the first, for `disable`); later events did not run. */
  readonly exhausted: boolean;
}

export type FromWorker =
  | { readonly type: 'loaded'; readonly job: number }
  | { readonly type: 'ran'; readonly job: number; readonly reply: RunReply }
  | {
      readonly type: 'failed';
      readonly job: number;
      /** A FilterError, or a fault of the input (`MALFORMED_FRAME`, `BATCH_TOO_LARGE`) rather than of the filter. */
      readonly errorName: FilterErrorName | 'MALFORMED_FRAME' | 'BATCH_TOO_LARGE';
      readonly message: string;
    }
  | { readonly type: 'log'; readonly id: string; readonly level: number; readonly text: string };

/**
 * What the filter thread shares with the watchdog: the job it runs (0: none),
 * when it started it, and when the current call into the guest started
 * (Infinity while the host, not the guest, runs), each in wall time and in
 * the thread's CPU time; and, set once at the thread's start, its Linux
 * thread id and where its CPU time is read (thread-time.ts; 0 and
 * CpuSource.none where it cannot be, and the CPU times stay NaN).
 */
export interface ThreadClock {
  readonly job: Int32Array;
  readonly tid: Int32Array;
  readonly cpuSource: Int32Array;
  readonly startedAtMs: Float64Array;
  readonly callStartedAtMs: Float64Array;
  readonly startedCpuMs: Float64Array;
  readonly callStartedCpuMs: Float64Array;
}

export const THREAD_CLOCK_BYTES = 48;

export function threadClock(buffer: SharedArrayBuffer): ThreadClock {
  return {
    job: new Int32Array(buffer, 0, 1),
    tid: new Int32Array(buffer, 4, 1),
    cpuSource: new Int32Array(buffer, 8, 1),
    startedAtMs: new Float64Array(buffer, 16, 1),
    callStartedAtMs: new Float64Array(buffer, 24, 1),
    startedCpuMs: new Float64Array(buffer, 32, 1),
    callStartedCpuMs: new Float64Array(buffer, 40, 1),
  };
}

/** Milliseconds on a clock both threads read alike (monotonic, unlike Date.now). */
export function sharedNowMs(): number {
  return performance.timeOrigin + performance.now();
}
