/**
 * The bounds a WebAssembly filter runs within (docs/filters.md, "Limits").
 * Node cannot meter WebAssembly (no fuel, and a worker's `resourceLimits`
 * leave out `WebAssembly.Memory`), so time is bounded by a watchdog that
 * terminates the filter thread, and memory by the module's declared maximum.
 * The time budgets below are CPU time of the filter thread on Linux, where
 * /proc tells it (a call or batch also ends at 20 times its budget in wall
 * time, however little it ran: thread-time.ts), and wall time elsewhere.
 */
export interface FilterLimits {
  /** Largest module accepted at load. */
  readonly moduleBytesMax: number;
  /** Compilation taking longer than this refuses the module. */
  readonly compileTimeoutMs: number;
  /** Cap on a module's memory, in 64 KiB pages (256: 16 MiB). */
  readonly memoryPagesMax: number;
  /**
   * Time one call into the guest may take (the guest's own time, not
   * instantiation or the host's checks): a whole batch, or one event when a
   * failed batch is run again event by event. Past it the thread is
   * terminated and the filter quarantined.
   */
  readonly callTimeoutMs: number;
  /** Time one batch may take in the guest, its event-by-event calls included; at least callTimeoutMs. */
  readonly batchTimeoutMs: number;
  /** Time instantiating a module (its start function) may take. */
  readonly startTimeoutMs: number;
  /** Largest event block handed to a guest, once decompressed. */
  readonly blockBytesMax: number;
  /** Most events a transform may return for one batch. */
  readonly outputEventsMax: number;
  /** Failing events in a row (across batches) after which a `skip`/`dead-letter` filter is disabled. */
  readonly consecutiveFailuresMax: number;
  /** Log lines kept per guest call; more are dropped. */
  readonly logLinesPerCall: number;
  /** Bytes kept of one log line or abort message. */
  readonly messageBytesMax: number;
}

export const defaultFilterLimits: FilterLimits = {
  moduleBytesMax: 1024 * 1024,
  compileTimeoutMs: 2000,
  memoryPagesMax: 256,
  // RELIABILITY.md W: a looping guest holds a core until stopped, and starves other tenants meanwhile.
  callTimeoutMs: 50,
  batchTimeoutMs: 200,
  startTimeoutMs: 1000,
  blockBytesMax: 8 * 1024 * 1024,
  outputEventsMax: 10_000,
  consecutiveFailuresMax: 5,
  logLinesPerCall: 8,
  messageBytesMax: 1024,
};

/**
 * The limits with `overrides` applied; throws a RangeError for a value that
 * is not a positive integer, or a call budget above the batch budget.
 */
export function filterLimits(overrides: Partial<FilterLimits> = {}): FilterLimits {
  const limits = { ...defaultFilterLimits, ...overrides };
  for (const [name, value] of Object.entries(limits))
    if (!Number.isSafeInteger(value) || value < 1)
      throw new RangeError(`filter limit ${name} must be a positive integer, got ${String(value)}`);
  if (limits.memoryPagesMax > 65536)
    throw new RangeError(`memoryPagesMax is at most 65536 (4 GiB), got ${limits.memoryPagesMax}`);
  if (limits.callTimeoutMs > limits.batchTimeoutMs)
    throw new RangeError(
      `callTimeoutMs (${limits.callTimeoutMs}) must not exceed batchTimeoutMs (${limits.batchTimeoutMs})`,
    );
  return limits;
}
