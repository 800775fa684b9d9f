/**
 * What can go wrong with a WebAssembly filter, one row each: refused at load
 * (the module), refused by the registry that stores modules as name@version
 * (src/filters/registry.ts), or contained at run time (the guest misbehaved,
 * and the sandbox decided what happens to the event and the filter). The names are
 * meant to join the broker's error table (src/protocol/error-codes.ts) when
 * the HTTP API serves filters; until then they live here.
 */
export const filterErrors = {
  FILTER_INVALID_MODULE: {
    retriable: false,
    description:
      'The bytes are not a WebAssembly module the host accepts: they do not validate or compile, are too large, take too long to compile, declare another ABI version, or fail to start.',
  },
  FILTER_IMPORT_NOT_ALLOWED: {
    retriable: false,
    description:
      'The module imports something outside the host ABI (broker_filter_v1.abort, .log, .memory), such as WASI, or imports an ABI function with the wrong signature.',
  },
  FILTER_EXPORT_MISSING: {
    retriable: false,
    description:
      'The module lacks an export the ABI requires for its kind, or exports it with the wrong type.',
  },
  FILTER_MEMORY_UNBOUNDED: {
    retriable: false,
    description:
      'The module memory declares no maximum, or a maximum (or minimum) above the cap, or is shared or 64-bit.',
  },
  FILTER_ALREADY_LOADED: {
    retriable: false,
    description: 'A filter with this id is loaded already; unload it first.',
  },
  FILTER_NOT_FOUND: {
    retriable: false,
    description:
      'No filter with this id is loaded, or the registry stores no such name or name@version (never stored, or deleted).',
  },
  FILTER_INVALID_REF: {
    retriable: false,
    description:
      'A filter name or reference is malformed: a name is 1 to 128 letters, digits, "-" and "_" in dot-separated words; a reference is name or name@version, the version a positive integer without leading zeros.',
  },
  FILTER_VERSION_EXISTS: {
    retriable: false,
    description:
      'The registry holds this name@version already with other bytes or kind, or the version is not above every version the name has had: versions are immutable and never reused.',
  },
  FILTER_TOO_MANY_VERSIONS: {
    retriable: false,
    description:
      'The name has as many stored versions as the registry allows (versionsMax); delete old versions first.',
  },
  FILTER_TRAP: {
    retriable: false,
    description:
      'The guest trapped (unreachable, out-of-bounds access, division by zero, stack overflow) or aborted through broker_filter_v1.abort.',
  },
  FILTER_BAD_POINTER: {
    retriable: false,
    description: 'The guest returned an address or length outside its memory, or none.',
  },
  FILTER_BAD_OUTPUT: {
    retriable: false,
    description:
      'A transform returned a block that is not a well-formed EventBatch of valid CloudEvents, or holds more events than allowed.',
  },
  FILTER_MEMORY_EXCEEDED: {
    retriable: false,
    description:
      'The guest needed more memory than its cap: it had no room for the batch, or trapped after failing to grow.',
  },
  FILTER_TIMEOUT: {
    retriable: false,
    description:
      'The guest ran past the time budget of a batch: its thread was terminated and the filter quarantined.',
  },
  FILTER_DISABLED: {
    retriable: false,
    description:
      'The filter was disabled by its failure policy or quarantined after a timeout; it runs no more.',
  },
  FILTER_SANDBOX_CLOSED: {
    retriable: false,
    description: 'The sandbox is closed.',
  },
} as const satisfies Record<string, { readonly retriable: boolean; readonly description: string }>;

export type FilterErrorName = keyof typeof filterErrors;

/** What the sandbox did with the filter and event when this error happened. */
export type FilterErrorAction = 'skip' | 'dead-letter' | 'disable' | 'none';

export interface FilterErrorOptions {
  readonly filterId?: string;
  /** The event of the batch the failure is pinned to, when it is. */
  readonly eventIndex?: number;
  readonly action?: FilterErrorAction;
  readonly cause?: unknown;
}

export class FilterError extends Error {
  readonly errorName: FilterErrorName;
  readonly retriable: boolean;
  readonly filterId: string | null;
  readonly eventIndex: number | null;
  readonly action: FilterErrorAction;

  constructor(name: FilterErrorName, message: string, options: FilterErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FilterError';
    this.errorName = name;
    this.retriable = filterErrors[name].retriable;
    this.filterId = options.filterId ?? null;
    this.eventIndex = options.eventIndex ?? null;
    this.action = options.action ?? 'none';
  }
}

const brand = Symbol.for('eddy.FilterError');
Object.defineProperty(FilterError.prototype, brand, { value: true });

/** True for a FilterError from any copy of this module (optionally of one name). */
export function isFilterError(value: unknown, name?: FilterErrorName): value is FilterError {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[brand] === true &&
    (name === undefined || (value as FilterError).errorName === name)
  );
}
