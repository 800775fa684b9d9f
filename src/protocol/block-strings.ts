/**
 * The strings of one event block, decoded as TextDecoder decodes them (invalid
 * sequences as U+FFFD, one leading BOM dropped). The batch writer writes a
 * string that a batch's events repeat (source, type, time, content type) once
 * and points every event at it (event-batch-writer.ts): for a context
 * attribute, the string last decoded is kept with where its bytes start, and
 * the next event pointing at the same bytes gets it without decoding again.
 */
import { EventSlot, type EventBlockReader } from './event-block-reader.js';

const contextSlots =
  Math.max(
    EventSlot.id,
    EventSlot.source,
    EventSlot.type,
    EventSlot.specversion,
    EventSlot.subject,
    EventSlot.time,
    EventSlot.datacontenttype,
    EventSlot.dataschema,
  ) + 1;

const decoder = new TextDecoder();

export class BlockStrings {
  readonly #bytes: Uint8Array;
  /** Per context slot: where the string last decoded from it starts (-1: none), and the string. */
  readonly #decodedAt = new Int32Array(contextSlots).fill(-1);
  readonly #decoded: string[] = new Array<string>(contextSlots).fill('');

  /** For the block `bytes`, which the readers passed to the methods must be reading. */
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  /** The block these strings are of. */
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  /** The selected event's string attribute in `slot`, null when absent. */
  context(reader: EventBlockReader, slot: number): string | null {
    return reader.eventRange(slot) ? this.kept(reader, slot) : null;
  }

  /** The string in the reader's current range, read from the context attribute in `slot`: kept for the next event sharing its bytes. */
  kept(reader: EventBlockReader, slot: number): string {
    if (this.#decodedAt[slot] === reader.start) return this.#decoded[slot] as string;
    const text = this.range(reader);
    this.#decodedAt[slot] = reader.start;
    this.#decoded[slot] = text;
    return text;
  }

  /** The string in the reader's current range (`start`, `end`). */
  range(reader: EventBlockReader): string {
    return decoder.decode(this.#bytes.subarray(reader.start, reader.end));
  }
}
