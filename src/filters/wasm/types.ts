/** The contracts of the WebAssembly filter host (src/filters/wasm). */
import type { FilterKind } from './abi.js';
import type { FilterError } from './errors.js';
import type { FilterLimits } from './limits.js';
import type { ModuleMemory } from './module-check.js';

export type { FilterKind } from './abi.js';

/**
 * What happens when the guest fails on an event (trap, bad pointer, bad
 * output, memory exhausted): `skip` leaves the event out (a filter drops it, a
 * transform emits nothing for it), `dead-letter` leaves it out and asks the
 * broker to dead-letter it, `disable` stops the filter at the first failure.
 * Under `skip` and `dead-letter` the filter is still disabled after
 * `consecutiveFailuresMax` failing events in a row. A timeout always
 * quarantines the filter.
 */
export const trapPolicies = ['skip', 'dead-letter', 'disable'] as const;
export type TrapPolicy = (typeof trapPolicies)[number];

export interface FilterLoadOptions {
  readonly kind: FilterKind;
  /** Default `skip`. */
  readonly onTrap?: TrapPolicy;
  /**
   * Whether `consecutiveFailuresMax` failing events in a row disable the
   * filter (under `skip` and `dead-letter`). Default true. False for modules
   * that run over input nobody has vetted yet — transforms on publish, where
   * a bad event is its publisher's error, answered to it, and must not let one
   * publisher switch the module off for everyone. A timeout still quarantines.
   */
  readonly eventFailuresDisable?: boolean;
}

export type FilterState = 'loading' | 'active' | 'disabled';

export interface FilterStatus {
  readonly id: string;
  readonly kind: FilterKind;
  readonly onTrap: TrapPolicy;
  readonly state: FilterState;
  /** Why the filter was disabled (`FILTER_TIMEOUT` when quarantined by the watchdog); null while it runs. */
  readonly error: FilterError | null;
  readonly moduleBytes: number;
  readonly memory: ModuleMemory | null;
  /** Batches run, events they held, events that failed. */
  readonly batches: number;
  readonly events: number;
  readonly failedEvents: number;
}

/** An event the guest failed on, left out of the result; `action` tells the broker what to do with it. */
export interface EventFailure {
  readonly index: number;
  readonly action: 'skip' | 'dead-letter';
  readonly error: FilterError;
}

export interface FilterOutcome {
  readonly kind: 'filter';
  readonly eventCount: number;
  /** Bit i (byte i >> 3, bit i & 7, least significant first) is set when event i is kept. */
  readonly keep: Uint8Array;
  readonly keptCount: number;
  readonly failures: readonly EventFailure[];
}

export interface TransformOutcome {
  readonly kind: 'transform';
  readonly eventCount: number;
  /** The events replacing the batch: an uncompressed EventBatch, verified, each event a valid CloudEvent. */
  readonly block: Uint8Array;
  readonly outputCount: number;
  readonly failures: readonly EventFailure[];
}

export type RunOutcome = FilterOutcome | TransformOutcome;

export interface RunOptions {
  /** How the block is encoded; the sandbox inflates LZ4 before the guest sees it. Default `none`. */
  readonly compression?: 'none' | 'lz4';
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface FilterSandboxOptions {
  readonly limits?: Partial<FilterLimits>;
  /** Batches sent to the filter thread ahead of their turn (more wait in the sandbox). Default 4. */
  readonly pipelineDepth?: number;
  /** Called when a filter becomes active or is disabled (the broker reports the latter on `$sys.filters`). */
  readonly onStatusChange?: (status: FilterStatus) => void;
  /** Lines a guest logged through `broker_filter_v1.log`. */
  readonly onLog?: (filterId: string, level: LogLevel, text: string) => void;
  /**
   * Nice value (0–19) of the filter threads on Linux, so that guests, hostile
   * ones included, yield the CPU to the threads serving everyone when cores
   * are short. Default 0.
   */
  readonly threadNice?: number;
  /**
   * Keep a filter thread started ahead (≈ 15 MiB idle) to take over when the
   * watchdog terminates the current one, so a takeover does not wait for a
   * thread to start. Default true.
   */
  readonly spareThread?: boolean;
}

/** Whether event `index` is kept according to a filter's bitmap (the format `Deliver.kept` carries too). */
export { isKept } from '../../protocol/index.js';
