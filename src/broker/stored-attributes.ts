/**
 * The attributes of stored events as CESQL and the dialect filters read them:
 * from an event block's bytes in place (EventBlockReader), for subscription
 * filters (subscription-filter.ts) and routing conditions (routing/).
 *
 * What makes it cheap, measured in docs/performance.md#filters:
 * - String values are shown to the engine as UTF-8 bytes (`locate`, the
 *   `utf8` of `read`), so `type = 'x'`, `subject LIKE 'a%'` or `type IN (…)`
 *   compare bytes and decode nothing;
 * - a value that must be decoded (an argument of LOWER, say) is decoded by
 *   the block's BlockStrings, which keeps a context attribute's string while the
 *   next events point at the same bytes, which is how the batch writer shares
 *   repeated source, type, time and content type (event-batch-writer.ts);
 * - extension names are compared with the name asked for byte by byte.
 * Nothing is allocated per event unless a value is decoded.
 *
 * Strings decode as TextDecoder decodes them (and as decodeEventBatch gives
 * them to consumers): invalid sequences as U+FFFD, one leading BOM dropped.
 *
 * Data paths (`data.items.0.sku`, Eddy's CESQL extension) are read from the
 * event's data bytes when it is JSON, parsed once per event however many
 * paths and expressions read it.
 */
import {
  DataPaths,
  eventDataJson,
  isDataPath,
  Located,
  type AttributeReader,
  type Utf8Attributes,
} from '../filters/cesql.js';
import { BlockStrings, EventSlot, ExtensionSlot, type EventBlockReader } from '../protocol/index.js';

/** Extension kinds of the schema (ExtensionKind in eddy.fbs). */
const Kind = { integer: 1, boolean: 2, binary: 3 } as const;

const contextSlots: ReadonlyMap<string, number> = new Map([
  ['id', EventSlot.id],
  ['source', EventSlot.source],
  ['type', EventSlot.type],
  ['specversion', EventSlot.specversion],
  ['subject', EventSlot.subject],
  ['time', EventSlot.time],
  ['datacontenttype', EventSlot.datacontenttype],
  ['dataschema', EventSlot.dataschema],
]);

/** An absent specversion means "1.0" (eddy.fbs): these are the bytes `locate` shows for it. */
const defaultSpecversion = new TextEncoder().encode('1.0');

/** What `#find` found; for `text`, the reader's `start` and `end` hold the value's bytes. */
const Found = { missing: 0, text: 1, integer: 2, boolean: 3, defaultSpecversion: 4 } as const;
type Found = (typeof Found)[keyof typeof Found];

/** Where a string's text starts: after a leading UTF-8 BOM (EF BB BF), which TextDecoder drops. */
function textStart(bytes: Uint8Array, start: number, end: number): number {
  return end - start >= 3 && bytes[start] === 0xef && bytes[start + 1] === 0xbb && bytes[start + 2] === 0xbf
    ? start + 3
    : start;
}

export class StoredAttributes implements Utf8Attributes<EventBlockReader> {
  /** Set by `locate`: the String value's bytes. */
  bytes: Uint8Array = defaultSpecversion;
  start = 0;
  end = 0;
  /** The reader to evaluate with; its `utf8` is this object. */
  readonly read: AttributeReader<EventBlockReader>;
  readonly #paths: DataPaths;
  /** The `eventOffset` of the event whose data `#json` holds; -1 for none. */
  #event = -1;
  #json: unknown = undefined;
  /** The strings decoded from the current block, each context attribute's kept while events share it. */
  #strings: BlockStrings | null = null;
  /** Set by `#find`: the context slot of the attribute found, -1 for an extension. */
  #slot = -1;

  /** `names`: the attribute names the expressions read; data paths among them are split once here. */
  constructor(names: readonly string[] = []) {
    this.#paths = new DataPaths(names);
    this.read = Object.assign((reader: EventBlockReader, name: string) => this.#read(reader, name), {
      utf8: this,
    });
  }

  /**
   * Drops what is kept about the last block: callers call it before a block
   * (the offsets kept say nothing about another one) and after it (so that
   * the last event's parsed data is not kept until the next).
   */
  forget(): void {
    this.#event = -1;
    this.#json = undefined;
    this.#strings = null;
  }

  locate(reader: EventBlockReader, name: string): Located {
    switch (this.#find(reader, name)) {
      case Found.text:
        this.bytes = reader.bytes;
        this.start = textStart(reader.bytes, reader.start, reader.end);
        this.end = reader.end;
        return Located.string;
      case Found.defaultSpecversion:
        this.bytes = defaultSpecversion;
        this.start = 0;
        this.end = defaultSpecversion.length;
        return Located.string;
      case Found.missing:
        return Located.missing;
      default:
        return Located.other;
    }
  }

  #read(reader: EventBlockReader, name: string): unknown {
    if (isDataPath(name)) return this.#dataAt(reader, name);
    switch (this.#find(reader, name)) {
      case Found.text:
        return this.#decode(reader, this.#slot);
      case Found.integer:
        return reader.extensionInteger();
      case Found.boolean:
        return reader.extensionBoolean();
      case Found.defaultSpecversion:
        return '1.0';
      default:
        return undefined;
    }
  }

  /** Looks attribute `name` of the current event up; for text, leaves its range in the reader. */
  #find(reader: EventBlockReader, name: string): Found {
    const slot = contextSlots.get(name);
    this.#slot = slot ?? -1;
    if (slot !== undefined) {
      if (reader.eventRange(slot)) return Found.text;
      return slot === EventSlot.specversion ? Found.defaultSpecversion : Found.missing;
    }
    for (let i = 0; i < reader.extensionCount; i++) {
      reader.selectExtension(i);
      if (!reader.extensionRange(ExtensionSlot.name) || !this.#spells(reader, name)) continue;
      switch (reader.extensionKind()) {
        case Kind.integer:
          return Found.integer;
        case Kind.boolean:
          return Found.boolean;
        case Kind.binary:
          return Found.missing; // CESQL has no binary type; such an attribute reads as missing
        default:
          return reader.extensionRange(ExtensionSlot.text) ? Found.text : Found.missing;
      }
    }
    return Found.missing;
  }

  /**
   * Whether the reader's range decodes to `name`, compared byte by byte while
   * the name is ASCII (the names filters use always are): an ASCII character
   * decodes from its own byte only.
   */
  #spells(reader: EventBlockReader, name: string): boolean {
    const { bytes, end } = reader;
    const start = textStart(bytes, reader.start, end);
    for (let i = 0; i < name.length; i++) {
      const c = name.charCodeAt(i);
      if (c >= 0x80) return this.#stringsOf(bytes).range(reader) === name;
      if (start + i >= end || bytes[start + i] !== c) return false;
    }
    return end - start === name.length;
  }

  /** The string in the reader's range; a context attribute's is kept while events share its bytes (`slot` -1: not kept). */
  #decode(reader: EventBlockReader, slot: number): string {
    const strings = this.#stringsOf(reader.bytes);
    return slot < 0 ? strings.range(reader) : strings.kept(reader, slot);
  }

  #stringsOf(block: Uint8Array): BlockStrings {
    if (this.#strings?.bytes !== block) this.#strings = new BlockStrings(block);
    return this.#strings;
  }

  #dataAt(reader: EventBlockReader, name: string): unknown {
    if (reader.eventOffset !== this.#event) {
      const contentType = this.#read(reader, 'datacontenttype');
      const data = reader.eventRange(EventSlot.data)
        ? reader.bytes.subarray(reader.start, reader.end)
        : undefined;
      this.#json = eventDataJson(data, contentType);
      this.#event = reader.eventOffset;
    }
    return this.#paths.valueAt(this.#json, name);
  }
}
