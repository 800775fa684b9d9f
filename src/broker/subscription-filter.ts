/**
 * A subscription's filter (CloudEvents Subscriptions API dialects, CESQL
 * included) run over stored batches as they are delivered: the attributes
 * each expression reads are taken from the event block's bytes in place, so a
 * filtered subscription costs no decoded event objects. The batch still goes
 * to the consumer as stored, with a bitmap of the events that matched; a batch
 * in which none matched is not sent at all.
 *
 * How attributes and data paths are read: stored-attributes.ts.
 */
import { compileFilters, InvalidFilterError, type CompiledFilter } from '../filters/dialects.js';
import { BrokerError, EventBlockReader, type StoredBatch } from '../protocol/index.js';
import { StoredAttributes } from './stored-attributes.js';
import { eventBlockOf } from './stored-events.js';

export class SubscriptionFilter {
  readonly #filter: CompiledFilter;
  readonly #reader = new EventBlockReader();
  readonly #attributes: StoredAttributes;

  private constructor(filter: CompiledFilter) {
    this.#filter = filter;
    this.#attributes = new StoredAttributes(filter.attributes);
  }

  /** Compiles a subscription's filters (a JSON array); INVALID_REQUEST naming where and why otherwise. */
  static parse(json: string): SubscriptionFilter {
    let filters: unknown;
    try {
      filters = JSON.parse(json);
    } catch (error) {
      throw new BrokerError('INVALID_REQUEST', `the filter is not JSON: ${(error as Error).message}`);
    }
    try {
      return new SubscriptionFilter(compileFilters(Array.isArray(filters) ? filters : [filters]));
    } catch (error) {
      if (error instanceof InvalidFilterError)
        throw new BrokerError('INVALID_REQUEST', error.message, { cause: error });
      throw error;
    }
  }

  /**
   * Which events of `batch` match: null when all do, 'none' when none does,
   * else a bitmap (bit i, LSB first, set when event i matched).
   */
  keep(batch: StoredBatch): Uint8Array | null | 'none' {
    return this.keepEvents(eventBlockOf(batch));
  }

  /** `keep` over an event block already decompressed. */
  keepEvents(block: Uint8Array): Uint8Array | null | 'none' {
    const reader = this.#reader;
    const read = this.#attributes.read;
    const count = reader.reset(block);
    this.#attributes.forget();
    const bitmap = new Uint8Array(Math.ceil(count / 8));
    let kept = 0;
    for (let i = 0; i < count; i++) {
      reader.selectEvent(i);
      if (!this.#filter.matchesWith(reader, read)) continue;
      bitmap[i >> 3] = (bitmap[i >> 3] as number) | (1 << (i & 7));
      kept++;
    }
    this.#attributes.forget(); // the last event's parsed data is not kept until the next batch
    if (kept === 0) return 'none';
    return kept === count ? null : bitmap;
  }
}
