/**
 * Publish quotas: a token bucket per WebSocket connection (and per client
 * address on the HTTP API) that refuses batches arriving faster than
 * `publishQuotaEventsPerSecond` / `publishQuotaBytesPerSecond`, with room for
 * `publishQuotaBurstMs` worth of either at once.
 *
 * Kafka throttles instead: over its byte-rate a client's produce is still
 * stored, answered at once with a throttle time, and the broker then reads
 * nothing more from the connection until that time is over (its design chose
 * that over an error, since clients retrying without backoff worsen a flood).
 * The uWebSockets.js WebSocket has no way to stop reading a socket, so muting
 * is not open to the broker; throttling would mean holding frames it has read.
 * NATS core has no publish rate limit. Eddy refuses the batch before anything
 * of it is checked or stored, with a retriable QUOTA_EXCEEDED whose
 * `retryAfterMs` (Error.retry_after_ms on the WebSocket) says when it would
 * pass: a flooding client costs the broker a frame decode, a few comparisons
 * and an Error frame per batch, and its refused bytes are never kept. A
 * client retrying at once only earns more refusals.
 *
 * A batch larger than the whole burst would never fit; it is taken when the
 * bucket is full and leaves it in debt, so the long-run rate still holds and
 * no valid batch is refused forever.
 */
import { BrokerError } from '../protocol/index.js';
import type { ResolvedConfig } from './config.js';

export interface PublishQuotaLimits {
  /** 0: events are not limited. */
  readonly eventsPerSecond: number;
  /** 0: bytes are not limited. */
  readonly bytesPerSecond: number;
  readonly burstMs: number;
  /** What a full bucket holds: burstMs worth of each rate. */
  readonly burstEvents: number;
  readonly burstBytes: number;
}

export function publishQuota(
  eventsPerSecond: number,
  bytesPerSecond: number,
  burstMs: number,
): PublishQuotaLimits {
  return {
    eventsPerSecond,
    bytesPerSecond,
    burstMs,
    burstEvents: (eventsPerSecond * burstMs) / 1000,
    burstBytes: (bytesPerSecond * burstMs) / 1000,
  };
}

/** The quota a broker applies, or null when it has none (the default). */
export function publishQuotaOf(config: ResolvedConfig): PublishQuotaLimits | null {
  const { publishQuotaEventsPerSecond, publishQuotaBytesPerSecond, publishQuotaBurstMs } = config;
  if (publishQuotaEventsPerSecond === 0 && publishQuotaBytesPerSecond === 0) return null;
  return publishQuota(publishQuotaEventsPerSecond, publishQuotaBytesPerSecond, publishQuotaBurstMs);
}

/** One client's allowance: three numbers, refilled lazily when a batch comes. */
export class QuotaBucket {
  readonly limits: PublishQuotaLimits;
  #events: number;
  #bytes: number;
  /** When the bucket was last refilled, performance.now() (monotonic: a stepped wall clock changes nothing). */
  #atMs: number;

  constructor(limits: PublishQuotaLimits, nowMs: number) {
    this.limits = limits;
    this.#events = limits.burstEvents;
    this.#bytes = limits.burstBytes;
    this.#atMs = nowMs;
  }

  /**
   * Takes a batch's cost and returns 0, or takes nothing and returns how many
   * ms from `nowMs` until the batch would be taken (at least 1).
   */
  take(events: number, bytes: number, nowMs: number): number {
    this.#refill(nowMs);
    const limits = this.limits;
    const waitMs = Math.max(
      waitFor(events, this.#events, limits.eventsPerSecond, limits.burstEvents),
      waitFor(bytes, this.#bytes, limits.bytesPerSecond, limits.burstBytes),
    );
    if (waitMs > 0) return Math.max(1, Math.ceil(waitMs));
    // An unlimited side is not counted: it has nothing to refill it.
    if (limits.eventsPerSecond > 0) this.#events -= events;
    if (limits.bytesPerSecond > 0) this.#bytes -= bytes;
    return 0;
  }

  #refill(nowMs: number): void {
    const elapsedMs = nowMs - this.#atMs;
    if (elapsedMs <= 0) return;
    this.#atMs = nowMs;
    const limits = this.limits;
    this.#events = Math.min(limits.burstEvents, this.#events + (limits.eventsPerSecond * elapsedMs) / 1000);
    this.#bytes = Math.min(limits.burstBytes, this.#bytes + (limits.bytesPerSecond * elapsedMs) / 1000);
  }
}

/**
 * Ms until `tokens` reach what a batch costing `cost` needs: the cost, or the
 * whole burst for a batch larger than it. 0 for an unlimited dimension.
 */
function waitFor(cost: number, tokens: number, perSecond: number, burst: number): number {
  if (perSecond === 0) return 0;
  const needed = Math.min(cost, burst);
  return tokens >= needed ? 0 : ((needed - tokens) * 1000) / perSecond;
}

/** The refusal of a batch over its quota, naming the limit and when to try again. */
export function quotaExceeded(limits: PublishQuotaLimits, whose: string, retryAfterMs: number): BrokerError {
  const rates = [
    ...(limits.eventsPerSecond > 0 ? [`${limits.eventsPerSecond} events/s`] : []),
    ...(limits.bytesPerSecond > 0 ? [`${limits.bytesPerSecond} bytes/s`] : []),
  ].join(' and ');
  return new BrokerError(
    'QUOTA_EXCEEDED',
    `${whose} publishes faster than its quota of ${rates} (burst ${limits.burstMs} ms); ` +
      `nothing of the batch was stored; retry in ${retryAfterMs} ms`,
    { retryAfterMs },
  );
}

/**
 * The HTTP API's buckets, one per client address. HTTP requests have no
 * connection to keep state on, and the address is all that identifies a client
 * until there is authentication (behind a proxy, all its clients share one).
 * Bounded: the map is kept in order of last use and the address unused longest
 * goes first (in O(1): a scan for refilled buckets would cost the event loop a
 * millisecond per new address once the bound is reached). Forgetting an address
 * only ever loosens its quota, and one unused for a burst's length has refilled
 * anyway.
 */
export class AddressQuotas {
  readonly #limits: PublishQuotaLimits;
  readonly #addressesMax: number;
  readonly #buckets = new Map<string, QuotaBucket>();

  constructor(limits: PublishQuotaLimits, addressesMax: number) {
    this.#limits = limits;
    this.#addressesMax = addressesMax;
  }

  get size(): number {
    return this.#buckets.size;
  }

  bucketOf(address: string, nowMs: number): QuotaBucket {
    let bucket = this.#buckets.get(address);
    if (bucket !== undefined) {
      this.#buckets.delete(address); // to the end: used last
    } else {
      bucket = new QuotaBucket(this.#limits, nowMs);
      const leastRecent = this.#buckets.keys().next();
      if (this.#buckets.size >= this.#addressesMax && leastRecent.done !== true)
        this.#buckets.delete(leastRecent.value);
    }
    this.#buckets.set(address, bucket);
    return bucket;
  }
}
