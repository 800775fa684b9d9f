// Reading events in place. The host copies a batch's event block (an
// `EventBatch` FlatBuffer, src/protocol/fbs/eddy.fbs) into linear memory as the
// broker stored it; an `Event` is the address of one `Event` table in it, and
// each attribute getter follows the table's vtable to the bytes, returning a
// `Bytes` view. Nothing is copied, decoded or allocated.
//
// The vtable slots below (output.ts writes with them too) follow the order of the fields in eddy.fbs; the
// schema only ever appends fields, so they never change within ABI version 1.

import { Bytes } from './bytes';

export const EVENT_ID: i32 = 0;
export const EVENT_SOURCE: i32 = 1;
export const EVENT_TYPE: i32 = 2;
export const EVENT_SPECVERSION: i32 = 3;
export const EVENT_SUBJECT: i32 = 4;
export const EVENT_TIME: i32 = 5;
export const EVENT_DATACONTENTTYPE: i32 = 6;
export const EVENT_DATASCHEMA: i32 = 7;
export const EVENT_EXTENSIONS: i32 = 8;
export const EVENT_DATA: i32 = 9;

export const EXTENSION_NAME: i32 = 0;
export const EXTENSION_KIND: i32 = 1;
export const EXTENSION_TEXT: i32 = 2;
export const EXTENSION_INTEGER: i32 = 3;
export const EXTENSION_BOOLEAN: i32 = 4;
export const EXTENSION_BINARY: i32 = 5;

/** The CloudEvents type of an extension value, as `Extension.kind` gives it (eddy.fbs `ExtensionKind`). */
export namespace ExtensionKind {
  export const String: u8 = 0;
  export const Integer: u8 = 1;
  export const Boolean: u8 = 2;
  export const Binary: u8 = 3;
  export const Uri: u8 = 4;
  export const UriRef: u8 = 5;
  export const Timestamp: u8 = 6;
}

/** Offset of a field inside its table, 0 when the field is absent. */
export function fieldOffset(table: usize, slot: i32): usize {
  const vtable = table - <usize>load<i32>(table);
  const at = <usize>(4 + 2 * slot);
  return at < <usize>load<u16>(vtable) ? <usize>load<u16>(vtable + at) : 0;
}

/** Where an offset field of a table points, 0 when the field is absent. */
export function fieldTarget(table: usize, slot: i32): usize {
  const at = fieldOffset(table, slot);
  if (at == 0) return 0;
  const position = table + at;
  return position + <usize>load<u32>(position);
}

// "1.0" as a FlatBuffers string: what an absent specversion means.
const SPEC_VERSION_1_0: usize = memory.data<u8>([3, 0, 0, 0, 0x31, 0x2e, 0x30, 0], 4);
const EMPTY: usize = memory.data<u8>([0, 0, 0, 0, 0, 0, 0, 0], 4);

/** One CloudEvent of the batch, read in place. */
@final
@unmanaged
export class Event {
  /** The event whose `Event` table starts at `address`. */
  static at(address: usize): Event {
    return changetype<Event>(address);
  }

  get id(): Bytes {
    return required(changetype<usize>(this), EVENT_ID);
  }

  get source(): Bytes {
    return required(changetype<usize>(this), EVENT_SOURCE);
  }

  get type(): Bytes {
    return required(changetype<usize>(this), EVENT_TYPE);
  }

  /** "1.0" unless the publisher said otherwise. */
  get specversion(): Bytes {
    const at = fieldTarget(changetype<usize>(this), EVENT_SPECVERSION);
    return changetype<Bytes>(at == 0 ? SPEC_VERSION_1_0 : at);
  }

  get subject(): Bytes | null {
    return optional(changetype<usize>(this), EVENT_SUBJECT);
  }

  /** RFC 3339 text, exactly as published. */
  get time(): Bytes | null {
    return optional(changetype<usize>(this), EVENT_TIME);
  }

  get datacontenttype(): Bytes | null {
    return optional(changetype<usize>(this), EVENT_DATACONTENTTYPE);
  }

  get dataschema(): Bytes | null {
    return optional(changetype<usize>(this), EVENT_DATASCHEMA);
  }

  /** The event's data, or null when it has none. */
  get data(): Bytes | null {
    return optional(changetype<usize>(this), EVENT_DATA);
  }

  get extensionCount(): i32 {
    const vector = fieldTarget(changetype<usize>(this), EVENT_EXTENSIONS);
    return vector == 0 ? 0 : <i32>load<u32>(vector);
  }

  /** Extensions are sorted by name. Aborts when `index` is out of range. */
  extension(index: i32): Extension {
    const vector = fieldTarget(changetype<usize>(this), EVENT_EXTENSIONS);
    if (vector == 0 || <u32>index >= load<u32>(vector)) throw new RangeError('extension index out of range');
    const element = vector + 4 + ((<usize>index) << 2);
    return changetype<Extension>(element + <usize>load<u32>(element));
  }

  /** The extension called `name`, or null. */
  findExtension(name: string): Extension | null {
    const vector = fieldTarget(changetype<usize>(this), EVENT_EXTENSIONS);
    if (vector == 0) return null;
    const count = <usize>load<u32>(vector);
    for (let i: usize = 0; i < count; i++) {
      const element = vector + 4 + (i << 2);
      const extension = changetype<Extension>(element + <usize>load<u32>(element));
      if (extension.name.equals(name)) return extension;
    }
    return null;
  }

  /** The text of extension `name` (String, URI, URI-reference or Timestamp), or null. */
  extensionText(name: string): Bytes | null {
    const extension = this.findExtension(name);
    return extension === null ? null : extension.text;
  }

  /** The value of Integer extension `name`, or `fallback` when it is absent or not an Integer. */
  extensionInteger(name: string, fallback: i32 = 0): i32 {
    const extension = this.findExtension(name);
    return extension !== null && extension.kind == ExtensionKind.Integer ? extension.integer : fallback;
  }

  /** Whether Boolean extension `name` is present and true. */
  extensionFlag(name: string): bool {
    const extension = this.findExtension(name);
    return extension !== null && extension.kind == ExtensionKind.Boolean && extension.boolean;
  }
}

/** One extension attribute of an event, read in place. */
@final
@unmanaged
export class Extension {
  get name(): Bytes {
    return required(changetype<usize>(this), EXTENSION_NAME);
  }

  /** One of `ExtensionKind`. */
  get kind(): u8 {
    const at = fieldOffset(changetype<usize>(this), EXTENSION_KIND);
    return at == 0 ? ExtensionKind.String : load<u8>(changetype<usize>(this) + at);
  }

  /** The value of a String, URI, URI-reference or Timestamp extension. */
  get text(): Bytes | null {
    return optional(changetype<usize>(this), EXTENSION_TEXT);
  }

  get integer(): i32 {
    const at = fieldOffset(changetype<usize>(this), EXTENSION_INTEGER);
    return at == 0 ? 0 : load<i32>(changetype<usize>(this) + at);
  }

  get boolean(): bool {
    const at = fieldOffset(changetype<usize>(this), EXTENSION_BOOLEAN);
    return at != 0 && load<u8>(changetype<usize>(this) + at) != 0;
  }

  get binary(): Bytes | null {
    return optional(changetype<usize>(this), EXTENSION_BINARY);
  }
}

function required(table: usize, slot: i32): Bytes {
  const at = fieldTarget(table, slot);
  return changetype<Bytes>(at == 0 ? EMPTY : at);
}

function optional(table: usize, slot: i32): Bytes | null {
  return changetype<Bytes | null>(fieldTarget(table, slot));
}

/** Number of events in the event block at `block`. */
export function blockEventCount(block: usize): i32 {
  const vector = fieldTarget(block + <usize>load<u32>(block), 0);
  return vector == 0 ? 0 : <i32>load<u32>(vector);
}

/** Address of the events vector's first element in the event block at `block` (0 when it has none). */
export function blockEvents(block: usize): usize {
  const vector = fieldTarget(block + <usize>load<u32>(block), 0);
  return vector == 0 ? 0 : vector + 4;
}

/** The event at `index` of an events vector from `blockEvents` (not range-checked). */
export function eventAt(events: usize, index: i32): Event {
  const element = events + ((<usize>index) << 2);
  return changetype<Event>(element + <usize>load<u32>(element));
}
