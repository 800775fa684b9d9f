/**
 * A subscription's filter (CloudEvents Subscriptions API dialects, CESQL
 * included) run over stored batches as they are delivered: the attributes
 * each expression reads are taken from the event block's bytes in place, so a
 * filtered subscription costs no decoded event objects. The batch still goes
 * to the consumer as stored, with a bitmap of the events that matched; a batch
 * in which none matched is not sent at all.
 *
 * Data paths (`data.items.0.sku`, Eddy's CESQL extension) are read from the
 * event's data bytes when it is JSON, parsed once per event however many
 * paths and expressions read it. A filter without data paths uses the plain
 * attribute reader, chosen when the filter is compiled.
 */
import { uncompressSync } from 'lz4-napi';
import { DataPaths, eventDataJson, isDataPath } from '../filters/cesql.js';
import { compileFilters, InvalidFilterError, type CompiledFilter } from '../filters/dialects.js';
import {
  BrokerError,
  EventBlockReader,
  EventSlot,
  ExtensionSlot,
  type StoredBatch,
} from '../protocol/index.js';

/** Extension kinds of the schema (ExtensionKind in eddy.fbs). */
const Kind = { integer: 1, boolean: 2, binary: 3 } as const;

const decoder = new TextDecoder();

const contextSlots: Readonly<Record<string, number>> = {
  id: EventSlot.id,
  source: EventSlot.source,
  type: EventSlot.type,
  specversion: EventSlot.specversion,
  subject: EventSlot.subject,
  time: EventSlot.time,
  datacontenttype: EventSlot.datacontenttype,
  dataschema: EventSlot.dataschema,
};

/** An attribute of the reader's current event as CESQL sees it: String, Integer, Boolean, or missing. */
export function readAttribute(reader: EventBlockReader, name: string): unknown {
  const slot = contextSlots[name];
  if (slot !== undefined) {
    if (!reader.eventRange(slot)) return name === 'specversion' ? '1.0' : undefined;
    return decoder.decode(reader.bytes.subarray(reader.start, reader.end));
  }
  for (let i = 0; i < reader.extensionCount; i++) {
    reader.selectExtension(i);
    if (!reader.extensionRange(ExtensionSlot.name)) continue;
    if (decoder.decode(reader.bytes.subarray(reader.start, reader.end)) !== name) continue;
    switch (reader.extensionKind()) {
      case Kind.integer:
        return reader.extensionInteger();
      case Kind.boolean:
        return reader.extensionBoolean();
      case Kind.binary:
        return undefined; // CESQL has no binary type; such an attribute reads as missing
      default:
        return reader.extensionRange(ExtensionSlot.text)
          ? decoder.decode(reader.bytes.subarray(reader.start, reader.end))
          : undefined;
    }
  }
  return undefined;
}

/**
 * The reader of a filter that reads data paths: attributes as readAttribute
 * reads them, and data paths from the current event's data, which it parses
 * once and keeps until the reader moves to another event (`forget` for
 * another block, whose offsets say nothing about the last one's). Routing
 * shares one between all the rules of a publish (routing/routing-rules.ts).
 */
export class StoredEventData {
  readonly #paths: DataPaths;
  /** The `eventOffset` of the event whose data `#json` holds; -1 for none. */
  #event = -1;
  #json: unknown = undefined;

  constructor(names: readonly string[]) {
    this.#paths = new DataPaths(names);
  }

  forget(): void {
    this.#event = -1;
    this.#json = undefined;
  }

  readonly read = (reader: EventBlockReader, name: string): unknown => {
    if (!isDataPath(name)) return readAttribute(reader, name);
    if (reader.eventOffset !== this.#event) {
      const contentType = readAttribute(reader, 'datacontenttype');
      const data = reader.eventRange(EventSlot.data)
        ? reader.bytes.subarray(reader.start, reader.end)
        : undefined;
      this.#json = eventDataJson(data, contentType);
      this.#event = reader.eventOffset;
    }
    return this.#paths.valueAt(this.#json, name);
  };
}

export class SubscriptionFilter {
  readonly #filter: CompiledFilter;
  readonly #reader = new EventBlockReader();
  /** Null when no expression of the filter reads a data path. */
  readonly #data: StoredEventData | null;
  readonly #read: (reader: EventBlockReader, name: string) => unknown;

  private constructor(filter: CompiledFilter) {
    this.#filter = filter;
    const dataPaths = filter.attributes.filter(isDataPath);
    this.#data = dataPaths.length === 0 ? null : new StoredEventData(dataPaths);
    this.#read = this.#data === null ? readAttribute : this.#data.read;
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
    return this.keepEvents(
      batch.compression === 'lz4' ? uncompressSync(Buffer.from(batch.events)) : batch.events,
    );
  }

  /** `keep` over an event block already decompressed. */
  keepEvents(block: Uint8Array): Uint8Array | null | 'none' {
    const reader = this.#reader;
    const read = this.#read;
    const count = reader.reset(block);
    this.#data?.forget();
    const bitmap = new Uint8Array(Math.ceil(count / 8));
    let kept = 0;
    for (let i = 0; i < count; i++) {
      reader.selectEvent(i);
      if (!this.#filter.matchesWith(reader, read)) continue;
      bitmap[i >> 3] = (bitmap[i >> 3] as number) | (1 << (i & 7));
      kept++;
    }
    this.#data?.forget(); // the last event's parsed data is not kept until the next batch
    if (kept === 0) return 'none';
    return kept === count ? null : bitmap;
  }
}
