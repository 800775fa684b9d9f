/**
 * FilterSandbox: runs WebAssembly filters and transforms in a thread of their
 * own, so that a guest that never returns can be stopped. Batches go to the
 * thread in order (a few ahead, `pipelineDepth`); the thread publishes in a
 * SharedArrayBuffer which job it is running and since when (wall and CPU
 * time), and a watchdog timer checks the job at the head of the order
 * against its budget: CPU time of the thread on Linux, so that a guest is not
 * blamed for waiting on a busy machine for a core (thread-time.ts). A job
 * over budget gets its thread terminated: the job fails with FILTER_TIMEOUT,
 * its filter is quarantined (disabled), and a fresh thread is started with
 * every other active filter loaded again; the jobs that were queued behind
 * the stuck one run there, unharmed. Reading the thread's own clock makes the
 * watchdog immune to a busy main thread: a late timer never blames a guest
 * whose answer is merely waiting to be read.
 *
 * Failures inside the guest (traps, bad pointers, bad output, memory) are
 * pinned to events by the thread (instance.ts); the sandbox applies each
 * filter's policy to them and reports the decision as data.
 */
import { Worker } from 'node:worker_threads';
import { BrokerError, STORED_BATCH_HEADER_BYTES, forEachStoredBatch } from '../../protocol/index.js';
import { filterKinds, type FilterKind } from './abi.js';
import { FilterError, type FilterErrorName } from './errors.js';
import { filterLimits, type FilterLimits } from './limits.js';
import {
  THREAD_CLOCK_BYTES,
  sharedNowMs,
  threadClock,
  type FromWorker,
  type InstanceSettings,
  type RunReply,
  type ThreadClock,
  type ToWorker,
} from './messages.js';
import { checkModule, type CheckedModule } from './module-check.js';
import { WALL_BUDGET_FACTOR, budgetVerdict, threadCpuMs, type CpuSource } from './thread-time.js';
import {
  trapPolicies,
  type EventFailure,
  type FilterLoadOptions,
  type FilterSandboxOptions,
  type FilterStatus,
  type LogLevel,
  type RunOptions,
  type RunOutcome,
  type TrapPolicy,
} from './types.js';

/** Under vitest the sandbox runs from `src/*.ts`, which a worker thread cannot load: it then runs the build. */
function workerEntry(): URL {
  const here = import.meta.url;
  return here.endsWith('.ts')
    ? new URL('../../../dist/src/filters/wasm/sandbox-thread.js', here)
    : new URL('./sandbox-thread.js', here);
}

interface Entry {
  readonly id: string;
  /** Names this load in the filter thread, where an id loaded again is another instance. */
  readonly slot: number;
  readonly kind: FilterKind;
  readonly onTrap: TrapPolicy;
  readonly eventFailuresDisable: boolean;
  state: 'loading' | 'active' | 'disabled';
  error: FilterError | null;
  checked: CheckedModule | null;
  /** Settles when loading ends, either way. */
  loaded: Promise<unknown>;
  batches: number;
  events: number;
  failedEvents: number;
}

interface Job {
  readonly number: number;
  readonly filterId: string;
  /** Time the whole job may take in the filter thread (CPU time on Linux: limits.ts). */
  readonly budgetMs: number;
  /** Time one call into the guest may take within it (at most budgetMs). */
  readonly callBudgetMs: number;
  readonly message: ToWorker & { readonly type: 'load' | 'run' };
  readonly resolve: (reply: RunReply | null) => void;
  readonly reject: (error: Error) => void;
}

interface Thread {
  readonly worker: Worker;
  readonly clock: ThreadClock;
  readonly exited: Promise<void>;
  /** Whether it has sent anything yet (a thread that dies before is not restarted). */
  answered: boolean;
}

const levels: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

/** How long after a takeover the next spare thread starts: after the burst of failures that caused it. */
const SPARE_DELAY_MS = 1000;

export class FilterSandbox {
  readonly #limits: FilterLimits;
  readonly #pipelineDepth: number;
  readonly #threadNice: number;
  readonly #spareThread: boolean;
  readonly #onStatusChange: FilterSandboxOptions['onStatusChange'];
  readonly #onLog: FilterSandboxOptions['onLog'];
  readonly #filters = new Map<string, Entry>();
  #thread: Thread;
  /**
   * A thread started ahead with no filter in it, which takes over when the
   * current one is terminated: a new thread costs ~150 ms of CPU to start
   * (Node's bootstrap and this module graph), better spent before an
   * incident than during it. Started with the first filter, and again a
   * while after each takeover; it holds ~15 MiB while idle.
   */
  #spare: Thread | null = null;
  #spareTimer: NodeJS.Timeout | null = null;
  /** Every thread started, for close() to wait on the ones being terminated. */
  readonly #exits: Promise<void>[] = [];
  /** Jobs sent to the current thread, in the order it runs them. */
  #inFlight: Job[] = [];
  /** Jobs not sent yet. */
  #waiting: Job[] = [];
  #watchdog: NodeJS.Timeout | null = null;
  #nextJob = 1;
  #nextSlot = 1;
  #restarts = 0;
  #closed = false;
  #closedBy: FilterError | null = null;

  constructor(options: FilterSandboxOptions = {}) {
    this.#limits = filterLimits(options.limits);
    const depth = options.pipelineDepth ?? 4;
    if (!Number.isSafeInteger(depth) || depth < 1)
      throw new RangeError(`pipelineDepth must be a positive integer, got ${depth}`);
    this.#pipelineDepth = depth;
    const nice = options.threadNice ?? 0;
    if (!Number.isSafeInteger(nice) || nice < 0 || nice > 19)
      throw new RangeError(`threadNice must be an integer from 0 to 19, got ${nice}`);
    this.#threadNice = nice;
    this.#spareThread = options.spareThread ?? true;
    this.#onStatusChange = options.onStatusChange;
    this.#onLog = options.onLog;
    this.#thread = this.#spawn();
  }

  get limits(): FilterLimits {
    return this.#limits;
  }

  /** Thread id of the current filter thread (it changes when the watchdog replaces it). */
  get threadId(): number {
    return this.#thread.worker.threadId;
  }

  /** Thread id of the spare filter thread, null while there is none (no filter loaded yet, or just after a takeover). */
  get spareThreadId(): number | null {
    return this.#spare?.worker.threadId ?? null;
  }

  /** How many times the watchdog (or a crash) replaced the filter thread. */
  get restarts(): number {
    return this.#restarts;
  }

  #spawn(): Thread {
    const buffer = new SharedArrayBuffer(THREAD_CLOCK_BYTES);
    const worker = new Worker(workerEntry(), {
      workerData: { clock: buffer, nice: this.#threadNice },
      name: 'eddy-filters',
      // A worker inherits the process's flags, but refuses `--input-type` (node --input-type=module -e);
      // then it gets none (a list given explicitly may hold only per-thread flags).
      ...(process.execArgv.some((flag) => flag.startsWith('--input-type')) ? { execArgv: [] } : {}),
    });
    worker.unref();
    let resolveExit = (): void => {};
    const thread: Thread = {
      worker,
      clock: threadClock(buffer),
      exited: new Promise<void>((resolve) => (resolveExit = resolve)),
      answered: false,
    };
    const lost = (reason: Error): void => {
      if (this.#spare === thread) this.#spare = null;
      if (this.#thread !== thread || this.#closed) return;
      // A thread that dies before answering anything would die again: stop rather than loop.
      if (thread.answered) this.#replaceThread(reason);
      else
        this.#shutDown(
          new FilterError('FILTER_SANDBOX_CLOSED', `the filter thread cannot run: ${reason.message}`),
        );
    };
    worker.on('error', (error) => lost(new Error(`the filter thread failed: ${error.message}`)));
    worker.on('exit', (code) => {
      lost(new Error(`the filter thread exited with code ${code}`));
      resolveExit();
    });
    worker.on('message', (message: FromWorker) => {
      if (this.#thread !== thread) return;
      thread.answered = true;
      this.#onMessage(message);
    });
    this.#exits.push(thread.exited);
    return thread;
  }

  /**
   * Loads a module as filter `id`: checks it against the ABI and limits,
   * compiles it, and starts an instance in the filter thread. Rejects with a
   * FilterError (FILTER_INVALID_MODULE, FILTER_IMPORT_NOT_ALLOWED, …) naming
   * what is wrong; nothing of a rejected module stays loaded.
   */
  load(id: string, wasm: Uint8Array, options: FilterLoadOptions): Promise<FilterStatus> {
    if (typeof id !== 'string' || id.length === 0 || id.length > 256)
      throw new TypeError('a filter id is a non-empty string of at most 256 characters');
    if (!(wasm instanceof Uint8Array)) throw new TypeError('the module must be a Uint8Array');
    if (!filterKinds.includes(options?.kind))
      throw new TypeError(`kind must be one of ${filterKinds.join(', ')}`);
    const onTrap = options.onTrap ?? 'skip';
    if (!trapPolicies.includes(onTrap))
      throw new TypeError(`onTrap must be one of ${trapPolicies.join(', ')}`);
    if (this.#closed) return Promise.reject(this.#closedBy ?? closedError());
    if (this.#filters.has(id))
      return Promise.reject(
        new FilterError('FILTER_ALREADY_LOADED', `filter ${id} is loaded already`, { filterId: id }),
      );
    const entry: Entry = {
      id,
      slot: this.#nextSlot++,
      kind: options.kind,
      onTrap,
      eventFailuresDisable: options.eventFailuresDisable ?? true,
      state: 'loading',
      error: null,
      checked: null,
      loaded: Promise.resolve(),
      batches: 0,
      events: 0,
      failedEvents: 0,
    };
    this.#filters.set(id, entry);
    if (this.#spareThread) this.#spare ??= this.#spawn();
    const loading = this.#loadEntry(entry, wasm);
    entry.loaded = loading.catch(() => undefined);
    return loading;
  }

  async #loadEntry(entry: Entry, wasm: Uint8Array): Promise<FilterStatus> {
    try {
      entry.checked = await checkModule(wasm, entry.kind, this.#limits);
      if (this.#filters.get(entry.id) !== entry)
        throw new FilterError('FILTER_NOT_FOUND', `filter ${entry.id} was unloaded while loading`, {
          filterId: entry.id,
        });
      await this.#submit(this.#loadJob(entry));
      if (this.#filters.get(entry.id) !== entry) {
        if (!this.#closed) this.#post({ type: 'unload', slot: entry.slot });
        throw new FilterError('FILTER_NOT_FOUND', `filter ${entry.id} was unloaded while loading`, {
          filterId: entry.id,
        });
      }
      entry.state = 'active';
      const status = this.#statusOf(entry);
      this.#onStatusChange?.(status);
      return status;
    } catch (error) {
      if (this.#filters.get(entry.id) === entry) this.#filters.delete(entry.id);
      if (error instanceof FilterError && error.filterId === null)
        throw new FilterError(error.errorName, error.message, { filterId: entry.id, cause: error.cause });
      throw error;
    }
  }

  #settings(entry: Entry, checked: CheckedModule): InstanceSettings {
    return {
      kind: entry.kind,
      memory: checked.memory,
      // Never exhausted by failing events when they may not disable it.
      limits: entry.eventFailuresDisable
        ? this.#limits
        : { ...this.#limits, consecutiveFailuresMax: Number.MAX_SAFE_INTEGER },
      stopAtFirstFailure: entry.onTrap === 'disable',
    };
  }

  #loadJob(entry: Entry): Omit<Job, 'number' | 'resolve' | 'reject'> {
    const checked = entry.checked as CheckedModule;
    return {
      filterId: entry.id,
      budgetMs: this.#limits.startTimeoutMs,
      callBudgetMs: this.#limits.startTimeoutMs,
      message: {
        type: 'load',
        job: 0,
        slot: entry.slot,
        id: entry.id,
        module: checked.module,
        settings: this.#settings(entry, checked),
      },
    };
  }

  /** Forgets filter `id`; batches of it not yet run fail with FILTER_NOT_FOUND. */
  unload(id: string): Promise<void> {
    const entry = this.#filters.get(id);
    if (entry === undefined)
      return Promise.reject(
        new FilterError('FILTER_NOT_FOUND', `no filter ${id} is loaded`, { filterId: id }),
      );
    this.#filters.delete(id);
    if (!this.#closed) this.#post({ type: 'unload', slot: entry.slot });
    return Promise.resolve();
  }

  status(id: string): FilterStatus | undefined {
    const entry = this.#filters.get(id);
    return entry === undefined ? undefined : this.#statusOf(entry);
  }

  list(): FilterStatus[] {
    return [...this.#filters.values()].map((entry) => this.#statusOf(entry));
  }

  #statusOf(entry: Entry): FilterStatus {
    return {
      id: entry.id,
      kind: entry.kind,
      onTrap: entry.onTrap,
      state: entry.state,
      error: entry.error,
      moduleBytes: entry.checked?.moduleBytes ?? 0,
      memory: entry.checked?.memory ?? null,
      batches: entry.batches,
      events: entry.events,
      failedEvents: entry.failedEvents,
    };
  }

  /**
   * Runs filter `id` over one event block (an EventBatch, LZ4-compressed if
   * `compression` says so). Resolves with the keep bitmap (a filter) or the
   * replacement block (a transform), and the events the guest failed on with
   * what the policy decided; rejects with a FilterError when the filter is
   * missing or disabled, or gets disabled by this batch (FILTER_TIMEOUT,
   * or its policy), and with a BrokerError MALFORMED_FRAME / BATCH_TOO_LARGE
   * for a block that cannot be read. `block` must stay unchanged until then.
   */
  run(id: string, block: Uint8Array, options: RunOptions = {}): Promise<RunOutcome> {
    if (!(block instanceof Uint8Array)) throw new TypeError('the event block must be a Uint8Array');
    const compression = options.compression ?? 'none';
    if (compression !== 'none' && compression !== 'lz4') throw new TypeError('compression is none or lz4');
    return this.#run(id, block, compression);
  }

  /**
   * Runs filter `id` over the first stored batch in `bytes` (broker header,
   * key, event block; docs/storage-format.md), inflating it as its header says.
   */
  runStoredBatch(id: string, bytes: Uint8Array): Promise<RunOutcome> {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('the stored batch must be a Uint8Array');
    if (bytes.length < STORED_BATCH_HEADER_BYTES)
      return Promise.reject(new BrokerError('MALFORMED_FRAME', 'a stored batch is at least 56 bytes'));
    let found: { events: Uint8Array; compression: 'none' | 'lz4' } | null = null;
    try {
      const size = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(8, true);
      forEachStoredBatch(bytes.subarray(0, Math.min(size, bytes.length)), (batch) => {
        found ??= { events: batch.events, compression: batch.compression };
      });
    } catch (error) {
      return Promise.reject(error);
    }
    const batch = found as { events: Uint8Array; compression: 'none' | 'lz4' } | null;
    if (batch === null)
      return Promise.reject(new BrokerError('MALFORMED_FRAME', 'no stored batch in the bytes'));
    return this.#run(id, batch.events, batch.compression);
  }

  async #run(id: string, block: Uint8Array, compression: 'none' | 'lz4'): Promise<RunOutcome> {
    if (this.#closed) throw this.#closedBy ?? closedError();
    let entry = this.#filters.get(id);
    if (entry?.state === 'loading') {
      await entry.loaded;
      entry = this.#filters.get(id);
    }
    if (entry === undefined)
      throw new FilterError('FILTER_NOT_FOUND', `no filter ${id} is loaded`, { filterId: id });
    if (entry.state === 'disabled') throw disabledError(entry);
    let reply: RunReply;
    try {
      reply = (await this.#submit({
        filterId: id,
        budgetMs: this.#limits.batchTimeoutMs,
        callBudgetMs: this.#limits.callTimeoutMs,
        message: { type: 'run', job: 0, slot: entry.slot, block, compression },
      })) as RunReply;
    } catch (error) {
      // Unloaded or disabled while the batch waited: say so rather than "not found in the thread".
      if (error instanceof FilterError && error.errorName === 'FILTER_NOT_FOUND' && isDisabled(entry))
        throw disabledError(entry);
      throw error;
    }
    // Sent before an earlier batch disabled the filter: its answer no longer counts.
    if (isDisabled(entry)) throw disabledError(entry);
    return this.#outcome(entry, reply);
  }

  /** Applies the filter's policy to the events the guest failed on. */
  #outcome(entry: Entry, reply: RunReply): RunOutcome {
    entry.batches++;
    entry.events += reply.eventCount;
    entry.failedEvents += reply.failures.length;
    const errors = reply.failures.map(
      (failure) =>
        new FilterError(failure.errorName, `filter ${entry.id}, event ${failure.index}: ${failure.message}`, {
          filterId: entry.id,
          eventIndex: failure.index,
          action: entry.onTrap === 'disable' || reply.exhausted ? 'disable' : entry.onTrap,
        }),
    );
    const last = errors.at(-1);
    if (last !== undefined && (entry.onTrap === 'disable' || reply.exhausted)) {
      const why =
        entry.onTrap === 'disable'
          ? 'its policy disables it at the first failure'
          : `${this.#limits.consecutiveFailuresMax} events in a row failed`;
      const error = new FilterError(last.errorName, `filter ${entry.id} disabled (${why}): ${last.message}`, {
        filterId: entry.id,
        ...(last.eventIndex === null ? {} : { eventIndex: last.eventIndex }),
        action: 'disable',
        cause: last,
      });
      this.#disable(entry, error);
      throw error;
    }
    const action = entry.onTrap === 'dead-letter' ? 'dead-letter' : 'skip';
    const failures: EventFailure[] = errors.map((error) => ({
      index: error.eventIndex as number,
      action,
      error,
    }));
    return entry.kind === 'filter'
      ? {
          kind: 'filter',
          eventCount: reply.eventCount,
          keep: reply.keep ?? new Uint8Array((reply.eventCount + 7) >> 3),
          keptCount: reply.keptCount,
          failures,
        }
      : {
          kind: 'transform',
          eventCount: reply.eventCount,
          block: reply.block ?? new Uint8Array(0),
          outputCount: reply.outputCount,
          failures,
        };
  }

  #disable(entry: Entry, error: FilterError): void {
    if (entry.state === 'disabled') return;
    entry.state = 'disabled';
    entry.error = error;
    if (!this.#closed) this.#post({ type: 'unload', slot: entry.slot });
    this.#onStatusChange?.(this.#statusOf(entry));
  }

  #submit(job: Omit<Job, 'number' | 'resolve' | 'reject'>): Promise<RunReply | null> {
    return new Promise((resolve, reject) => {
      if (this.#closed) {
        reject(this.#closedBy ?? closedError());
        return;
      }
      this.#waiting.push({ ...job, number: this.#nextJob++, resolve, reject });
      this.#pump();
    });
  }

  #pump(): void {
    while (this.#inFlight.length < this.#pipelineDepth && this.#waiting.length > 0) {
      const job = this.#waiting.shift() as Job;
      const entry = this.#filters.get(job.filterId);
      if (job.message.type === 'run' && entry?.state === 'disabled') {
        job.reject(disabledError(entry));
        continue;
      }
      this.#inFlight.push(job);
      this.#send(job);
      if (this.#inFlight.length === 1) this.#arm(job.callBudgetMs);
    }
    if (this.#inFlight.length > 0) this.#thread.worker.ref();
    else this.#thread.worker.unref();
  }

  #send(job: Job): void {
    const message = job.message;
    if (message.type === 'load') {
      this.#post({ ...message, job: job.number });
      return;
    }
    // A copy of its own, handed over without a second copy; the caller's view may sit in a larger buffer.
    const block = new Uint8Array(message.block);
    this.#post({ ...message, job: job.number, block }, [block.buffer]);
  }

  #post(message: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.#thread.worker.postMessage(message, transfer);
  }

  #onMessage(message: FromWorker): void {
    if (message.type === 'log') {
      this.#onLog?.(message.id, levels[message.level] ?? 'info', message.text);
      return;
    }
    const at = this.#inFlight.findIndex((job) => job.number === message.job);
    if (at < 0) return;
    const [job] = this.#inFlight.splice(at, 1) as [Job];
    if (at === 0) this.#arm(this.#inFlight[0]?.callBudgetMs ?? 0);
    if (message.type === 'failed') job.reject(failure(message.errorName, message.message, job.filterId));
    else job.resolve(message.type === 'ran' ? message.reply : null);
    this.#pump();
  }

  #arm(delayMs: number): void {
    if (this.#watchdog !== null) clearTimeout(this.#watchdog);
    this.#watchdog = this.#inFlight.length === 0 ? null : setTimeout(() => this.#check(), delayMs);
  }

  /**
   * The watchdog: is the head job, or the guest call it is in, over budget by
   * the filter thread's own account? On Linux a budget is CPU time of the
   * thread (read here, only at a deadline), bounded by WALL_BUDGET_FACTOR
   * times it in wall time; elsewhere wall time (thread-time.ts).
   */
  #check(): void {
    this.#watchdog = null;
    const head = this.#inFlight[0];
    if (head === undefined) return;
    const clock = this.#thread.clock;
    if (Atomics.load(clock.job, 0) !== head.number) {
      // Not started yet, or finished with its answer on the way: look again a budget later.
      this.#arm(head.callBudgetMs);
      return;
    }
    // Read after the job number, which the thread stores after its times: none is an earlier job's.
    const now = sharedNowMs();
    const callStartedAtMs = clock.callStartedAtMs[0] as number;
    const callStartedCpuMs = clock.callStartedCpuMs[0] as number;
    const nowCpuMs = threadCpuMs(Atomics.load(clock.tid, 0), Atomics.load(clock.cpuSource, 0) as CpuSource);
    const jobMs = now - (clock.startedAtMs[0] as number);
    const jobCpuMs = nowCpuMs - (clock.startedCpuMs[0] as number);
    const job = budgetVerdict(jobMs, jobCpuMs, head.budgetMs);
    // Between two guest calls (the host at work), only the job's budget runs.
    const inCall = callStartedAtMs !== Number.POSITIVE_INFINITY;
    const callMs = now - callStartedAtMs;
    const callCpuMs = nowCpuMs - callStartedCpuMs;
    const call = inCall ? budgetVerdict(callMs, callCpuMs, head.callBudgetMs) : null;
    if (!job.over && (call === null || !call.over)) {
      this.#arm(Math.ceil(Math.min(job.recheckInMs, call?.over === false ? call.recheckInMs : Infinity)) + 1);
      return;
    }
    const entry = this.#filters.get(head.filterId);
    const [what, verdict, wallMs, cpuMs, budgetMs] =
      head.message.type === 'load'
        ? (['starting', job, jobMs, jobCpuMs, head.budgetMs] as const)
        : call?.over === true
          ? (['one call', call, callMs, callCpuMs, head.callBudgetMs] as const)
          : (['one batch', job, jobMs, jobCpuMs, head.budgetMs] as const);
    const [spent, bound] = Number.isNaN(cpuMs)
      ? [`ran ${Math.round(wallMs)} ms`, `its budget of ${budgetMs} ms`]
      : verdict.over && verdict.reason === 'wall'
        ? [
            `took ${Math.round(wallMs)} ms of wall time (${Math.round(cpuMs)} ms of CPU)`,
            `its wall-time bound of ${budgetMs * WALL_BUDGET_FACTOR} ms`,
          ]
        : [
            `ran ${Math.round(cpuMs)} ms of CPU (${Math.round(wallMs)} ms of wall time)`,
            `its budget of ${budgetMs} ms`,
          ];
    const error = new FilterError(
      'FILTER_TIMEOUT',
      `filter ${head.filterId} ${spent} on ${what}, over ${bound}: its thread was terminated and the filter quarantined`,
      { filterId: head.filterId, action: 'disable' },
    );
    this.#replaceThread(error, entry);
  }

  /**
   * Terminates the current thread and starts another: the head job fails with
   * `reason` (its filter is disabled), later jobs are sent again to the new
   * thread, after every active filter is loaded there again.
   */
  #replaceThread(reason: Error, culprit?: Entry): void {
    const old = this.#thread;
    const [head, ...rest] = this.#inFlight;
    this.#inFlight = [];
    if (this.#watchdog !== null) clearTimeout(this.#watchdog);
    this.#watchdog = null;
    void old.worker.terminate();
    this.#restarts++;
    this.#thread = this.#spare ?? this.#spawn();
    this.#spare = null;
    this.#spareLater();
    const error =
      reason instanceof FilterError
        ? reason
        : new FilterError(
            'FILTER_TRAP',
            `${reason.message} while running filter ${head?.filterId ?? '(none)'}`,
            {
              ...(head === undefined ? {} : { filterId: head.filterId }),
              action: 'disable',
            },
          );
    const blamed = culprit ?? (head === undefined ? undefined : this.#filters.get(head.filterId));
    if (head !== undefined) {
      if (head.message.type === 'load' && blamed !== undefined) this.#filters.delete(blamed.id);
      else if (blamed !== undefined) this.#disable(blamed, error);
      head.reject(error);
    }
    const restore: Job[] = [];
    for (const entry of this.#filters.values()) {
      if (entry.state !== 'active' || entry.checked === null) continue;
      restore.push({
        ...this.#loadJob(entry),
        number: this.#nextJob++,
        resolve: () => {},
        reject: (failure) =>
          this.#disable(
            entry,
            failure instanceof FilterError
              ? failure
              : new FilterError('FILTER_TRAP', failure.message, { filterId: entry.id, action: 'disable' }),
          ),
      });
    }
    this.#waiting = [...restore, ...rest, ...this.#waiting];
    this.#pump();
  }

  /** Starts the next spare thread once the takeover that used the last one is over. */
  #spareLater(): void {
    if (!this.#spareThread || this.#spareTimer !== null) return;
    this.#spareTimer = setTimeout(() => {
      this.#spareTimer = null;
      if (!this.#closed) this.#spare ??= this.#spawn();
    }, SPARE_DELAY_MS);
    this.#spareTimer.unref();
  }

  /** Ends the filter thread; batches not answered yet fail with FILTER_SANDBOX_CLOSED. */
  async close(): Promise<void> {
    if (!this.#closed) this.#shutDown(closedError());
    await this.#thread.worker.terminate();
    await Promise.all(this.#exits);
  }

  #shutDown(reason: FilterError): void {
    this.#closed = true;
    this.#closedBy = reason;
    if (this.#watchdog !== null) clearTimeout(this.#watchdog);
    this.#watchdog = null;
    for (const job of [...this.#inFlight, ...this.#waiting]) job.reject(reason);
    this.#inFlight = [];
    this.#waiting = [];
    if (this.#spareTimer !== null) clearTimeout(this.#spareTimer);
    this.#spareTimer = null;
    void this.#spare?.worker.terminate();
    this.#spare = null;
    void this.#thread.worker.terminate();
  }
}

/** Read through a call, as the state changes while a batch is awaited. */
function isDisabled(entry: Entry): boolean {
  return entry.state === 'disabled';
}

function closedError(): FilterError {
  return new FilterError('FILTER_SANDBOX_CLOSED', 'the filter sandbox is closed');
}

function disabledError(entry: Entry): FilterError {
  return new FilterError(
    'FILTER_DISABLED',
    `filter ${entry.id} is disabled: ${entry.error?.message ?? 'unknown reason'}`,
    {
      filterId: entry.id,
      cause: entry.error,
    },
  );
}

function failure(
  name: FilterErrorName | 'MALFORMED_FRAME' | 'BATCH_TOO_LARGE',
  message: string,
  filterId: string,
): Error {
  if (name === 'MALFORMED_FRAME' || name === 'BATCH_TOO_LARGE') return new BrokerError(name, message);
  return new FilterError(name, message, { filterId });
}
