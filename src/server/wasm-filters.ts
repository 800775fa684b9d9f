/**
 * WASM filters on subscriptions: a subscription names an uploaded filter
 * (`{ "wasm": "name@version" }`, or a bare name for its latest version, pinned
 * when the subscription is made; `"onTrap"` beside it picks the failure
 * policy), the module is loaded once per version and policy into the node's
 * filter sandbox — a thread of its own with a time budget per batch, so a
 * filter that loops or traps never stalls the gateway — and each stored batch
 * is run through it before delivery.
 *
 * What the sandbox decides is acted on here: events a `dead-letter` filter
 * failed on go to the topic's dead-letter topic (`<topic>.dlq`) before the
 * rest of their batch is delivered, and every quarantine, disablement and
 * (at most once a second per filter, counted) trap is reported as a
 * CloudEvent on the system topic `$sys.filters`.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { DeadLetterOrigin } from '../broker/index.js';
import {
  FilterSandbox,
  isFilterError,
  trapPolicies,
  type EventFailure,
  type FilterError,
  type FilterRegistry,
  type FilterKind,
  type FilterLimits,
  type FilterLoadOptions,
  type FilterStatus,
  type StoredFilter,
  type TransformOutcome,
  type TrapPolicy,
} from '../filters/index.js';
import { BrokerError, forEachStoredBatch, isBrokerError, type EventFields } from '../protocol/index.js';

/** Which events of a batch a filter kept: null for all, 'none', or a bitmap (bit i, LSB first). */
export type Kept = Uint8Array | null | 'none';

/** A subscription's WASM filter as its `filter` JSON gives it. */
export interface WasmFilterSpec {
  /** `name@version`, or a bare name for the latest version. */
  readonly ref: string;
  /** What a failure of the guest on an event does; default `skip`. */
  readonly onTrap: TrapPolicy;
}

/** The `subscription` of a batch a transform runs over on publish. */
export const PUBLISH_ORIGIN = 'publish';

/** Where a batch comes from: named in dead letters and in reports on `$sys.filters`. */
export interface BatchOrigin {
  /**
   * The durable subscription's name, `connection <id> subscription <id>` for a
   * plain one, or `publish` for a transform run on publish.
   */
  readonly subscription: string;
  readonly topic: string;
  readonly partition: number;
  /** Events before this offset were delivered already (a read may start inside a batch): never dead-lettered again. */
  readonly fromOffset: number;
}

/** What the filters need of the broker: its system topic for reports, and dead-letter topics. */
export interface WasmFiltersBroker {
  ensureFilterEventsTopic(): Promise<void>;
  publishFilterEvents(events: readonly EventFields[]): Promise<void>;
  storeDeadLetter(deadLetterTopic: string, origin: DeadLetterOrigin): Promise<void>;
}

/** The CloudEvents types on `$sys.filters`. */
export const filterEventTypes = {
  quarantined: 'eddy.filter.quarantined',
  disabled: 'eddy.filter.disabled',
  trapped: 'eddy.filter.trapped',
} as const;

/** At most one `eddy.filter.trapped` report per filter in this long; the others are counted into the next. */
const TRAP_REPORT_INTERVAL_MS = 1000;

/** Traps not reported yet of one loaded filter. */
interface TrapTally {
  lastReportMs: number;
  count: number;
  last: { readonly error: FilterError; readonly origin: BatchOrigin } | null;
  timer: NodeJS.Timeout | null;
}

/** The sandbox id of a filter loaded under a policy: the pinned ref, and the policy unless it is `skip`. */
function sandboxId(ref: string, onTrap: TrapPolicy): string {
  return onTrap === 'skip' ? ref : `${ref}#${onTrap}`;
}

/** The failure policy a subscription filter's sandbox id was loaded under (see sandboxId). */
export function policyOf(id: string): TrapPolicy {
  const at = id.indexOf('#');
  return at < 0 ? 'skip' : (id.slice(at + 1) as TrapPolicy);
}

/** The pinned `name@version` of a sandbox id. */
function refOf(id: string): string {
  const at = id.indexOf('#');
  return at < 0 ? id : id.slice(0, at);
}

export class WasmFilters {
  readonly #registry: FilterRegistry;
  readonly #broker: WasmFiltersBroker;
  readonly #sandbox: FilterSandbox;
  /** Specs being loaded or loaded, so concurrent subscriptions load a module once. */
  readonly #loading = new Map<string, Promise<string>>();
  /** Where the batch that disabled a filter came from, by the error that disabled it. */
  readonly #disabledBy = new WeakMap<FilterError, BatchOrigin>();
  readonly #traps = new Map<string, TrapTally>();
  /** Reports on their way to `$sys.filters`, for close() to wait on. */
  readonly #reporting = new Set<Promise<void>>();
  #closed = false;

  /** `limits` go to the sandbox (FilterLimits; the defaults otherwise). */
  constructor(
    registry: FilterRegistry,
    broker: WasmFiltersBroker,
    limits: Partial<FilterLimits> = {},
    threadNice = 0,
  ) {
    this.#registry = registry;
    this.#broker = broker;
    this.#sandbox = new FilterSandbox({
      limits,
      threadNice,
      // After the batch's own rejection has named where it came from (a microtask away; see keep).
      onStatusChange: (status) => {
        if (status.state === 'disabled' && status.error !== null)
          setImmediate(() => this.#reportDisabled(status));
      },
    });
  }

  /**
   * Loads the filter the spec names (the latest version for a bare name) under
   * its policy; resolves with the sandbox id to run it by (its pinned
   * `name@version`, with `#<policy>` unless the policy is `skip`).
   */
  async prepare(spec: WasmFilterSpec): Promise<string> {
    if (!trapPolicies.includes(spec.onTrap))
      throw new BrokerError('INVALID_REQUEST', `onTrap must be one of ${trapPolicies.join(', ')}`);
    const stored = await this.#stored(spec.ref, 'filter', 'a subscription takes a filter');
    const id = sandboxId(stored.ref, spec.onTrap);
    const status = this.#sandbox.status(id);
    if (status?.state === 'disabled')
      throw new BrokerError(
        'FILTER_FAILED',
        `${id} was stopped (${status.error?.errorName ?? status.state}): upload and use another version`,
      );
    return this.#load(id, stored, { kind: 'filter', onTrap: spec.onTrap });
  }

  /**
   * Loads the transform `ref` names (the latest version for a bare name) for
   * runs on publish by `owner` (a topic, or a routing rule): an instance of
   * its own, so that what one owner's publishers do to it stays theirs.
   * Events it fails on never disable it (they are answered to their
   * publisher); a timeout quarantines it, and preparing it again — attaching
   * it again — loads a fresh instance. Resolves with the sandbox id.
   */
  async prepareTransform(ref: string, owner: string): Promise<{ pinned: string; id: string }> {
    const stored = await this.#stored(ref, 'transform', 'a topic or routing rule takes a transform');
    // Owners are topic names (up to 249 characters): a digest keeps ids within the sandbox's 256.
    const id = `${stored.ref}#${PUBLISH_ORIGIN}:${createHash('sha256').update(owner).digest('hex').slice(0, 16)}`;
    if (this.#sandbox.status(id)?.state === 'disabled') {
      this.#loading.delete(id);
      await this.#sandbox.unload(id);
    }
    await this.#load(id, stored, { kind: 'transform', onTrap: 'skip', eventFailuresDisable: false });
    return { pinned: stored.ref, id };
  }

  /** The stored module `ref` names; INVALID_REQUEST unless it is of `kind`. */
  async #stored(ref: string, kind: FilterKind, takes: string): Promise<StoredFilter> {
    // A bare name is resolved every time (to the newest version), then pinned: the cache is by version.
    const stored = await this.#registry.get(ref);
    if (stored.kind !== kind)
      throw new BrokerError('INVALID_REQUEST', `${stored.ref} is a ${stored.kind}; ${takes}`);
    return stored;
  }

  /** Loads `stored` into the sandbox as `id` once, however many ask at the same time. */
  #load(id: string, stored: StoredFilter, options: FilterLoadOptions): Promise<string> {
    let loading = this.#loading.get(id);
    if (loading === undefined) {
      loading = (async () => {
        // Made before any filter runs, so that a client can subscribe to the reports ahead of any.
        await this.#broker.ensureFilterEventsTopic();
        if (this.#sandbox.status(id) === undefined) {
          try {
            await this.#sandbox.load(id, stored.bytes, options);
          } catch (error) {
            // Its top-level code ran past the budget: quarantined before it ever ran a batch.
            if (isFilterError(error, 'FILTER_TIMEOUT'))
              this.#report(filterEvent(filterEventTypes.quarantined, id, 'timeout', error, null, 1));
            throw error;
          }
        }
        return id;
      })();
      loading.catch(() => this.#loading.delete(id));
      this.#loading.set(id, loading);
    }
    return loading;
  }

  /**
   * Runs the loaded filter `id` over one stored batch from `origin`. Events
   * the filter failed on under `dead-letter` are stored in `<topic>.dlq`
   * (reason `filter-trap`) before this resolves; a dead letter that cannot be
   * stored rejects, so the batch is not delivered without it.
   */
  async keep(id: string, batch: Uint8Array, origin: BatchOrigin): Promise<Kept> {
    let outcome;
    try {
      outcome = await this.#sandbox.runStoredBatch(id, batch);
    } catch (error) {
      // The error that disabled the filter (not a later FILTER_DISABLED): its report names this batch.
      if (isFilterError(error) && error.action === 'disable' && error.errorName !== 'FILTER_DISABLED')
        this.#disabledBy.set(error, origin);
      throw error;
    }
    if (outcome.kind !== 'filter') throw new BrokerError('INTERNAL', `${id} did not run as a filter`);
    if (outcome.failures.length > 0) {
      this.#trapped(id, outcome.failures, origin);
      await this.#deadLetter(outcome.failures, batch, origin);
    }
    if (outcome.keptCount === 0) return 'none';
    return outcome.keptCount === outcome.eventCount ? null : outcome.keep;
  }

  /**
   * Runs the loaded transform `id` over an event block published to `topic`
   * (one the caller will not change until this settles). The events it
   * failed on are left out of the output, counted and reported like a
   * filter's traps, and returned for the caller's policy.
   */
  async transform(
    id: string,
    block: Uint8Array,
    compression: 'none' | 'lz4',
    topic: string,
  ): Promise<TransformOutcome> {
    const origin: BatchOrigin = { subscription: PUBLISH_ORIGIN, topic, partition: -1, fromOffset: 0 };
    let outcome;
    try {
      outcome = await this.#sandbox.run(id, block, { compression });
    } catch (error) {
      if (isFilterError(error) && error.action === 'disable' && error.errorName !== 'FILTER_DISABLED')
        this.#disabledBy.set(error, origin);
      throw error;
    }
    if (outcome.kind !== 'transform') throw new BrokerError('INTERNAL', `${id} did not run as a transform`);
    if (outcome.failures.length > 0) this.#trapped(id, outcome.failures, origin);
    return outcome;
  }

  /** Stores the events marked `dead-letter` in the topic's dead-letter topic, one by one in offset order. */
  async #deadLetter(
    failures: readonly EventFailure[],
    batch: Uint8Array,
    origin: BatchOrigin,
  ): Promise<void> {
    let baseOffset = -1;
    forEachStoredBatch(batch, (stored) => {
      if (baseOffset < 0) baseOffset = stored.baseOffset;
    });
    for (const failure of failures) {
      const offset = baseOffset + failure.index;
      if (failure.action !== 'dead-letter' || offset < origin.fromOffset) continue;
      await this.#broker.storeDeadLetter(`${origin.topic}.dlq`, {
        subscription: origin.subscription,
        topic: origin.topic,
        partition: origin.partition,
        offset,
        attempts: 0,
        reason: 'filter-trap',
        lastError: `${failure.error.errorName}: ${failure.error.message}`,
      });
    }
  }

  /** Counts traps; reports them at once, or when a second has passed since the last report. */
  #trapped(id: string, failures: readonly EventFailure[], origin: BatchOrigin): void {
    let tally = this.#traps.get(id);
    if (tally === undefined) {
      tally = { lastReportMs: 0, count: 0, last: null, timer: null };
      this.#traps.set(id, tally);
    }
    tally.count += failures.length;
    tally.last = { error: (failures.at(-1) as EventFailure).error, origin };
    if (tally.timer !== null) return;
    const waitMs = tally.lastReportMs + TRAP_REPORT_INTERVAL_MS - Date.now();
    if (waitMs <= 0) {
      this.#reportTraps(id, tally);
      return;
    }
    tally.timer = setTimeout(() => this.#reportTraps(id, tally), waitMs);
    tally.timer.unref();
  }

  #reportTraps(id: string, tally: TrapTally): void {
    tally.timer = null;
    if (tally.count === 0 || tally.last === null) return;
    const { error, origin } = tally.last;
    this.#report(filterEvent(filterEventTypes.trapped, id, 'trap', error, origin, tally.count));
    tally.count = 0;
    tally.last = null;
    tally.lastReportMs = Date.now();
  }

  #reportDisabled(status: FilterStatus): void {
    const error = status.error as FilterError;
    const origin = this.#disabledBy.get(error) ?? null;
    const quarantined = error.errorName === 'FILTER_TIMEOUT';
    // A policy's decision names the event's error as its cause; a thread that died or would not load it again does not.
    const reason = quarantined
      ? 'timeout'
      : !isFilterError(error.cause)
        ? 'thread-failed'
        : status.onTrap === 'disable'
          ? 'first-failure'
          : 'consecutive-failures';
    const type = quarantined ? filterEventTypes.quarantined : filterEventTypes.disabled;
    this.#report(filterEvent(type, status.id, reason, error, origin, 1));
  }

  /** Appends a report to `$sys.filters`; one that cannot be stored is a process warning, never an error of the batch. */
  #report(event: EventFields): void {
    if (this.#closed) return;
    const reporting = this.#broker.publishFilterEvents([event]).catch((error: unknown) => {
      if (isBrokerError(error, 'SHUTTING_DOWN')) return;
      process.emitWarning(
        `a report on $sys.filters (${event.type}) was lost: ${error instanceof Error ? error.message : String(error)}`,
        { code: 'EDDY_FILTER_REPORT_LOST' },
      );
    });
    this.#reporting.add(reporting);
    void reporting.finally(() => this.#reporting.delete(reporting));
  }

  /** Reports the traps still counted, waits for reports on their way, and ends the sandbox. */
  async close(): Promise<void> {
    for (const [id, tally] of this.#traps) {
      if (tally.timer !== null) clearTimeout(tally.timer);
      this.#reportTraps(id, tally);
    }
    this.#closed = true;
    await Promise.all(this.#reporting);
    await this.#sandbox.close();
  }
}

/**
 * A report on `$sys.filters`: source `/eddy/filters/<name@version>`, JSON data
 * `{ filter, onTrap, reason, errorName, message, subscription?, topic?, partition?, count }`.
 */
function filterEvent(
  type: string,
  id: string,
  reason: string,
  error: FilterError,
  origin: BatchOrigin | null,
  count: number,
): EventFields {
  const ref = refOf(id);
  const suffix = id.length === ref.length ? 'skip' : id.slice(ref.length + 1);
  // Transforms on publish: `publish:<owner>` (prepareTransform); they leave out what they fail on.
  const onTrap = suffix.startsWith(`${PUBLISH_ORIGIN}:`) ? 'skip' : suffix;
  const data = {
    filter: ref,
    onTrap,
    reason,
    errorName: error.errorName,
    message: error.message,
    ...(origin === null
      ? {}
      : { subscription: origin.subscription, topic: origin.topic, partition: origin.partition }),
    count,
  };
  return {
    id: randomUUID(),
    source: `/eddy/filters/${ref}`,
    type,
    subject: ref,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    data: new TextEncoder().encode(JSON.stringify(data)),
  };
}
