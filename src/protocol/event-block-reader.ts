/**
 * Reads the events of an event block (an `EventBatch` FlatBuffer) in place:
 * byte ranges of attributes, extension kinds and values, data length — no
 * string decoding, no object per event. The broker's publish path checks every
 * event through it. The block must have passed `verifyBuffer(bytes,
 * 'EventBatch')` first; the reader trusts its offsets.
 */
import { tables } from './generated/layout.js';

function slotOf(table: 'Event' | 'Extension', name: string): number {
  const field = tables[table].find((f) => f.name === name);
  if (field === undefined) throw new Error(`the schema has no ${table}.${name}`);
  return field.slot;
}

/** Vtable slots of the Event fields, by name. */
export const EventSlot = {
  id: slotOf('Event', 'id'),
  source: slotOf('Event', 'source'),
  type: slotOf('Event', 'type'),
  specversion: slotOf('Event', 'specversion'),
  subject: slotOf('Event', 'subject'),
  time: slotOf('Event', 'time'),
  datacontenttype: slotOf('Event', 'datacontenttype'),
  dataschema: slotOf('Event', 'dataschema'),
  extensions: slotOf('Event', 'extensions'),
  data: slotOf('Event', 'data'),
} as const;

export const ExtensionSlot = {
  name: slotOf('Extension', 'name'),
  kind: slotOf('Extension', 'kind'),
  text: slotOf('Extension', 'text'),
  integer: slotOf('Extension', 'integer'),
  boolean: slotOf('Extension', 'boolean'),
  binary: slotOf('Extension', 'binary'),
} as const;

export class EventBlockReader {
  #view: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  bytes: Uint8Array = new Uint8Array(0);
  #events = 0;
  count = 0;
  #event = 0;
  // The selected event's and extension's vtable and its size, read once per select rather than per field.
  #eventVtable = 0;
  #eventVtableBytes = 0;
  #extensions = 0;
  extensionCount = 0;
  #extension = 0;
  #extensionVtable = 0;
  #extensionVtableBytes = 0;
  /** Set by `string()`, `vector()`: where the last range read starts and ends (end exclusive); -1 if absent. */
  start = -1;
  end = -1;

  /** Points the reader at a verified block; returns its number of events. */
  reset(bytes: Uint8Array): number {
    this.bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const root = this.#deref(0);
    const at = this.#field(root, 0); // EventBatch.events
    this.#events = at === 0 ? 0 : this.#deref(root + at);
    this.count = at === 0 ? 0 : this.#view.getUint32(this.#events, true);
    return this.count;
  }

  #deref(at: number): number {
    return at + this.#view.getUint32(at, true);
  }

  /** Offset of a slot's field from its table, 0 when absent. */
  #field(table: number, slot: number): number {
    const vtable = table - this.#view.getInt32(table, true);
    return this.#slot(vtable, this.#view.getUint16(vtable, true), slot);
  }

  #slot(vtable: number, vtableBytes: number, slot: number): number {
    return 4 + 2 * slot < vtableBytes ? this.#view.getUint16(vtable + 4 + 2 * slot, true) : 0;
  }

  /** Where the selected event's table is in `bytes`: tells the events of one block apart. */
  get eventOffset(): number {
    return this.#event;
  }

  selectEvent(index: number): void {
    const event = this.#deref(this.#events + 4 + 4 * index);
    this.#event = event;
    this.#eventVtable = event - this.#view.getInt32(event, true);
    this.#eventVtableBytes = this.#view.getUint16(this.#eventVtable, true);
    const at = this.#slot(this.#eventVtable, this.#eventVtableBytes, EventSlot.extensions);
    this.#extensions = at === 0 ? 0 : this.#deref(this.#event + at);
    this.extensionCount = at === 0 ? 0 : this.#view.getUint32(this.#extensions, true);
  }

  selectExtension(index: number): void {
    const extension = this.#deref(this.#extensions + 4 + 4 * index);
    this.#extension = extension;
    this.#extensionVtable = extension - this.#view.getInt32(extension, true);
    this.#extensionVtableBytes = this.#view.getUint16(this.#extensionVtable, true);
  }

  /** Sets `start`/`end` to a string or byte-vector field of the current event; false when absent. */
  eventRange(slot: number): boolean {
    return this.#range(this.#event, this.#slot(this.#eventVtable, this.#eventVtableBytes, slot));
  }

  extensionRange(slot: number): boolean {
    return this.#range(this.#extension, this.#slot(this.#extensionVtable, this.#extensionVtableBytes, slot));
  }

  /** Sets `start`/`end` to the string or vector at `at` in `table`; `at` 0 is an absent field. */
  #range(table: number, at: number): boolean {
    if (at === 0) {
      this.start = this.end = -1;
      return false;
    }
    const target = this.#deref(table + at);
    this.start = target + 4;
    this.end = this.start + this.#view.getUint32(target, true);
    return true;
  }

  extensionKind(): number {
    const at = this.#slot(this.#extensionVtable, this.#extensionVtableBytes, ExtensionSlot.kind);
    return at === 0 ? 0 : this.#view.getUint8(this.#extension + at);
  }

  /** The current extension's Integer value (an int32 in the schema; 0 when absent). */
  extensionInteger(): number {
    const at = this.#slot(this.#extensionVtable, this.#extensionVtableBytes, ExtensionSlot.integer);
    return at === 0 ? 0 : this.#view.getInt32(this.#extension + at, true);
  }

  /** The current extension's Boolean value (false when absent). */
  extensionBoolean(): boolean {
    const at = this.#slot(this.#extensionVtable, this.#extensionVtableBytes, ExtensionSlot.boolean);
    return at !== 0 && this.#view.getUint8(this.#extension + at) !== 0;
  }
}
