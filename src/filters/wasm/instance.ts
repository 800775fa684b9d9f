/**
 * Runs one filter module over event blocks, on the calling thread: the
 * sandbox's filter thread uses it, and so do benchmarks that measure the guest
 * alone. Nothing the guest returns is trusted: every address and length is
 * checked against its memory before the host reads there, a transform's block
 * is verified as an EventBatch of valid CloudEvents, and a trap is caught and
 * classified. After a failure the instance is dropped and the next call gets a
 * fresh one, so a guest never continues from a state a trap left behind.
 *
 * When a call over the whole batch fails, the batch is run again one event at
 * a time to find the events that fail; the rest keep their result. The
 * sandbox decides (by policy) what happens to the failing ones.
 */
import { EventBlockChecker } from '../../events/index.js';
import {
  BrokerError,
  decodeEventBatch,
  encodeEventBatch,
  verifyBuffer,
  type EventFields,
} from '../../protocol/index.js';
import { ABI_VERSION, IMPORT_MODULE, IMPORTED_MEMORY, entryPoints, type GuestExports } from './abi.js';
import { FilterError } from './errors.js';
import type { InstanceSettings, RunReply, WireFailure } from './messages.js';
import { WebAssemblyApi, type WasmImportValue, type WasmMemory, type WasmModule } from './webassembly.js';

const PAGE_BYTES = 65536;

/** Thrown by the `abort` import to unwind the guest; becomes a FILTER_TRAP. */
class GuestAbort extends Error {}

const decoder = new TextDecoder();

/**
 * The number of events in an event block, reading only the root table and the
 * events vector (with bounds checks), or why it cannot be read. The broker
 * verified the whole block when it was published; the guest reads the rest
 * inside its own memory, where a bad offset can only hurt its own result.
 */
export function eventCountOf(block: Uint8Array): number | string {
  const length = block.length;
  if (length < 12) return `an event block of ${length} bytes is shorter than an EventBatch`;
  const view = new DataView(block.buffer, block.byteOffset, length);
  const root = view.getUint32(0, true);
  if (root % 4 !== 0 || root + 4 > length) return 'the root offset points outside the block';
  const vtable = root - view.getInt32(root, true);
  if (vtable < 0 || vtable % 2 !== 0 || vtable + 4 > length) return 'the root vtable lies outside the block';
  const vtableBytes = view.getUint16(vtable, true);
  if (vtable + vtableBytes > length) return 'the root vtable runs past the block';
  const field = vtableBytes >= 6 ? view.getUint16(vtable + 4, true) : 0;
  if (field === 0) return 'the block has no events vector';
  const position = root + field;
  if (position + 4 > length) return 'the events field lies outside the block';
  const vector = position + view.getUint32(position, true);
  if (vector + 4 > length) return 'the events vector lies outside the block';
  const count = view.getUint32(vector, true);
  if (count > (length - vector - 4) / 4) return 'the events vector runs past the block';
  return count;
}

function popCount(bits: Uint8Array): number {
  let count = 0;
  for (let byte of bits) {
    for (; byte !== 0; byte &= byte - 1) count++;
  }
  return count;
}

interface CallResult {
  readonly keep: Uint8Array | null;
  readonly output: Uint8Array | null;
  readonly outputCount: number;
}

export type LogSink = (level: number, text: string) => void;

/**
 * Told when control enters the guest (true) and comes back (false): the
 * filter thread times the guest alone with it, not instantiation or the
 * host's checks of what the guest returned.
 */
export type CallSink = (inGuest: boolean) => void;

export class FilterInstance {
  readonly #module: WasmModule;
  readonly #settings: InstanceSettings;
  readonly #log: LogSink;
  readonly #onCall: CallSink;
  readonly #checker = new EventBlockChecker();
  #guest: GuestExports | null = null;
  /** The memory of the current instance, as soon as it exists (the start function may abort). */
  #memory: WasmMemory | null = null;
  /** The block last copied into the current instance, and where. */
  #copied: Uint8Array | null = null;
  #copiedAt = 0;
  #logLines = 0;
  #consecutiveFailures = 0;

  constructor(
    module: WasmModule,
    settings: InstanceSettings,
    log: LogSink = () => {},
    onCall: CallSink = () => {},
  ) {
    this.#module = module;
    this.#settings = settings;
    this.#log = log;
    this.#onCall = onCall;
  }

  /** Instantiates the module now (running its start function); throws a FilterError if it cannot. */
  start(): void {
    try {
      this.#instance();
    } catch (error) {
      this.#drop();
      if (error instanceof FilterError) throw error;
      throw new FilterError(
        'FILTER_INVALID_MODULE',
        `the module does not start: ${this.#classify(error, 0).message}`,
      );
    }
  }

  get consecutiveFailures(): number {
    return this.#consecutiveFailures;
  }

  #text(address: number, length: number): string {
    const memory = this.#memory;
    if (memory === null) return '(no memory to read the message from)';
    const start = address >>> 0;
    const size = Math.min(length >>> 0, this.#settings.limits.messageBytesMax);
    if (start + size > memory.buffer.byteLength) return '(message outside the guest memory)';
    return decoder.decode(new Uint8Array(memory.buffer, start, size));
  }

  #instance(): GuestExports {
    if (this.#guest !== null) return this.#guest;
    const { memory: layout } = this.#settings;
    const provided = layout.imported
      ? new WebAssemblyApi.Memory({ initial: layout.minimumPages, maximum: layout.maximumPages })
      : null;
    this.#memory = provided;
    const host: Record<string, WasmImportValue> = {
      abort: (address: number, length: number): never => {
        throw new GuestAbort(this.#text(address, length));
      },
      log: (level: number, address: number, length: number): void => {
        if (this.#logLines >= this.#settings.limits.logLinesPerCall) return;
        this.#logLines++;
        this.#log(level, this.#text(address, length));
      },
    };
    if (provided !== null) host[IMPORTED_MEMORY] = provided;
    const instance = new WebAssemblyApi.Instance(this.#module, { [IMPORT_MODULE]: host });
    const exports = instance.exports as Record<string, unknown>;
    const memory = provided ?? (exports['memory'] as WasmMemory);
    this.#memory = memory;
    const guest: GuestExports = {
      memory,
      eddy_abi_version: exports['eddy_abi_version'] as () => number,
      eddy_input: exports['eddy_input'] as (length: number) => number,
      run: exports[entryPoints[this.#settings.kind].name] as GuestExports['run'],
    };
    const version = guest.eddy_abi_version();
    if (version !== ABI_VERSION)
      throw new FilterError(
        'FILTER_INVALID_MODULE',
        `the module was built for ABI version ${version}; this broker speaks version ${ABI_VERSION}`,
      );
    this.#guest = guest;
    return guest;
  }

  #drop(): void {
    this.#guest = null;
    this.#memory = null;
    this.#copied = null;
  }

  /** A FilterError for what the guest call threw; `before` is the memory size when the call began. */
  #classify(error: unknown, before: number): FilterError {
    if (error instanceof FilterError) return error;
    if (error instanceof GuestAbort)
      return new FilterError('FILTER_TRAP', `the guest aborted: ${error.message}`);
    const message = error instanceof Error ? error.message : String(error);
    const now = this.#memory?.buffer.byteLength ?? 0;
    const cap = this.#settings.memory.maximumPages * PAGE_BYTES;
    // An allocator that cannot grow traps with `unreachable`: blame memory when it grew during this
    // call, or had grown (past its initial size) up to the cap before.
    const grown = now > before || (now >= cap && now > this.#settings.memory.minimumPages * PAGE_BYTES);
    if (error instanceof WebAssemblyApi.RuntimeError && /unreachable/.test(message) && grown)
      return new FilterError(
        'FILTER_MEMORY_EXCEEDED',
        `the guest trapped (${message}) with its memory at ${now} of ${cap} bytes: it could not grow further`,
      );
    if (error instanceof RangeError && /call stack/i.test(message))
      return new FilterError('FILTER_TRAP', `the guest overflowed its stack: ${message}`);
    if (error instanceof WebAssemblyApi.RuntimeError)
      return new FilterError('FILTER_TRAP', `the guest trapped: ${message}`);
    return new FilterError('FILTER_TRAP', `the guest failed: ${message}`);
  }

  /** Runs the guest over events [first, end) of `block`; throws a FilterError when the call fails. */
  #call(block: Uint8Array, first: number, end: number): CallResult {
    let before = 0;
    try {
      const guest = this.#instance();
      this.#logLines = 0;
      before = guest.memory.buffer.byteLength;
      this.#onCall(true);
      const at = guest.eddy_input(block.length) >>> 0;
      this.#onCall(false);
      if (at === 0)
        throw new FilterError(
          'FILTER_MEMORY_EXCEEDED',
          `the guest has no room for a block of ${block.length} bytes`,
        );
      if (at + block.length > guest.memory.buffer.byteLength)
        throw new FilterError(
          'FILTER_BAD_POINTER',
          `eddy_input returned ${at}: ${block.length} bytes from there overrun the guest memory of ${guest.memory.buffer.byteLength} bytes`,
        );
      if (this.#copied !== block || this.#copiedAt !== at) {
        new Uint8Array(guest.memory.buffer, at, block.length).set(block);
        this.#copied = block;
        this.#copiedAt = at;
      }
      this.#onCall(true);
      const result = guest.run(at, block.length, first, end) >>> 0;
      this.#onCall(false);
      return this.#settings.kind === 'filter'
        ? this.#readKeep(guest.memory.buffer, result, end - first)
        : this.#readOutput(guest.memory.buffer, result);
    } catch (error) {
      this.#onCall(false);
      throw this.#classify(error, before);
    }
  }

  #readKeep(memory: ArrayBuffer, at: number, count: number): CallResult {
    const bytes = (count + 7) >> 3;
    if (at === 0 || at + bytes > memory.byteLength)
      throw new FilterError(
        'FILTER_BAD_POINTER',
        `eddy_filter returned ${at}: a bitmap of ${bytes} bytes there overruns the guest memory of ${memory.byteLength} bytes`,
      );
    const keep = new Uint8Array(memory, at, bytes).slice();
    if (count % 8 !== 0) keep[bytes - 1] = (keep[bytes - 1] as number) & ((1 << (count % 8)) - 1);
    return { keep, output: null, outputCount: 0 };
  }

  #readOutput(memory: ArrayBuffer, at: number): CallResult {
    if (at === 0 || at + 8 > memory.byteLength)
      throw new FilterError(
        'FILTER_BAD_POINTER',
        `eddy_transform returned ${at}, outside the guest memory of ${memory.byteLength} bytes`,
      );
    const record = new DataView(memory, at, 8);
    const address = record.getUint32(0, true);
    const length = record.getUint32(4, true);
    if (address === 0 || address + length > memory.byteLength)
      throw new FilterError(
        'FILTER_BAD_POINTER',
        `eddy_transform returned a block of ${length} bytes at ${address}, outside the guest memory of ${memory.byteLength} bytes`,
      );
    const output = new Uint8Array(memory, address, length).slice();
    return { keep: null, output, outputCount: this.#checkOutput(output) };
  }

  /** The number of events in a transform's block; throws FILTER_BAD_OUTPUT unless it may be stored and delivered. */
  #checkOutput(output: Uint8Array): number {
    const reason = verifyBuffer(output, 'EventBatch');
    if (reason !== null)
      throw new FilterError('FILTER_BAD_OUTPUT', `the transform returned a malformed event block: ${reason}`);
    const count = eventCountOf(output) as number;
    if (count > this.#settings.limits.outputEventsMax)
      throw new FilterError(
        'FILTER_BAD_OUTPUT',
        `the transform returned ${count} events, above the limit of ${this.#settings.limits.outputEventsMax}`,
      );
    const invalid = this.#checker.firstInvalid(output);
    if (invalid !== null) {
      const detail = invalid.issues.map((issue) => `${issue.attribute}: ${issue.message}`).join('; ');
      throw new FilterError(
        'FILTER_BAD_OUTPUT',
        `output event ${invalid.index} of the transform is not a valid CloudEvent: ${detail}`,
      );
    }
    return count;
  }

  /**
   * Runs the guest over a whole (uncompressed) event block. Throws a
   * BrokerError MALFORMED_FRAME when the block's event count cannot be read;
   * everything the guest does wrong ends up in the reply instead.
   */
  run(block: Uint8Array): RunReply {
    const count = eventCountOf(block);
    if (typeof count === 'string') throw new BrokerError('MALFORMED_FRAME', count);
    // The copy in guest memory is reused only while this block runs event by event.
    this.#copied = null;
    if (count === 0)
      return this.#reply(
        0,
        { keep: new Uint8Array(0), output: encodeEventBatch([]), outputCount: 0 },
        [],
        false,
      );
    try {
      const result = this.#call(block, 0, count);
      this.#consecutiveFailures = 0;
      return this.#reply(count, result, [], false);
    } catch (error) {
      this.#drop();
      if (count === 1) return this.#isolated(block, 1, error as FilterError);
      return this.#isolated(block, count, null);
    }
  }

  /** Runs each event on its own, after a call over several failed; `known` is the failure of a single event. */
  #isolated(block: Uint8Array, count: number, known: FilterError | null): RunReply {
    const { limits, stopAtFirstFailure, kind } = this.#settings;
    const keep = new Uint8Array((count + 7) >> 3);
    const outputs: Uint8Array[] = [];
    const failures: WireFailure[] = [];
    let exhausted = false;
    for (let index = 0; index < count; index++) {
      try {
        if (known !== null) throw known;
        const result = this.#call(block, index, index + 1);
        this.#consecutiveFailures = 0;
        if (kind === 'filter') {
          if (((result.keep?.[0] ?? 0) & 1) !== 0)
            keep[index >> 3] = (keep[index >> 3] as number) | (1 << (index & 7));
        } else if (result.outputCount > 0 && result.output !== null) outputs.push(result.output);
      } catch (error) {
        this.#drop();
        const failure = error as FilterError;
        failures.push({ index, errorName: failure.errorName, message: failure.message });
        this.#consecutiveFailures++;
        if (stopAtFirstFailure || this.#consecutiveFailures >= limits.consecutiveFailuresMax) {
          exhausted = true;
          break;
        }
      }
    }
    if (kind === 'filter')
      return this.#reply(count, { keep, output: null, outputCount: 0 }, failures, exhausted);
    const events: EventFields[] = outputs.flatMap((output) => decodeEventBatch(output));
    if (events.length > limits.outputEventsMax) {
      failures.push({
        index: count - 1,
        errorName: 'FILTER_BAD_OUTPUT',
        message: `the transform returned ${events.length} events, above the limit of ${limits.outputEventsMax}`,
      });
      return this.#reply(count, { keep: null, output: encodeEventBatch([]), outputCount: 0 }, failures, true);
    }
    return this.#reply(
      count,
      { keep: null, output: encodeEventBatch(events), outputCount: events.length },
      failures,
      exhausted,
    );
  }

  #reply(count: number, result: CallResult, failures: WireFailure[], exhausted: boolean): RunReply {
    const filter = this.#settings.kind === 'filter';
    return {
      eventCount: count,
      keep: filter ? result.keep : null,
      keptCount: filter && result.keep !== null ? popCount(result.keep) : 0,
      block: filter ? null : result.output,
      outputCount: filter ? 0 : result.outputCount,
      failures,
      exhausted,
    };
  }
}
