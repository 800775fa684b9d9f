// Building the event block a transform returns. Each emitted event is written
// at once as a self-contained piece of FlatBuffer (its vtable, table,
// extensions and strings, all offsets relative), one after another; at the end
// of the call the `EventBatch` header and the vector of events are written in
// the room left in front of them. Events are copied exactly once, from the
// input block (or the strings and buffers the transform made) to the output.
//
// Layout of the finished block (all offsets little-endian, 4-byte aligned):
//   0  u32 root offset (12)       4  EventBatch vtable (6 bytes, padded to 8)
//   12 EventBatch table            20 events vector: u32 count, u32 offsets…
//   …  unused bytes (zero) up to the first event, then the events.

import { Bytes, ByteBuffer } from './bytes';
import {
  EVENT_DATA,
  EVENT_DATACONTENTTYPE,
  EVENT_DATASCHEMA,
  EVENT_EXTENSIONS,
  EVENT_ID,
  EVENT_SOURCE,
  EVENT_SPECVERSION,
  EVENT_SUBJECT,
  EVENT_TIME,
  EVENT_TYPE,
  Event,
  ExtensionKind,
  fieldTarget,
} from './event';
import { fail } from './host';

// Event fields by vtable slot: the eight string attributes, the extensions, the data.
const SLOT_COUNT: i32 = EVENT_DATA + 1;

// How a value is held until the event is written.
const NONE: u8 = 0;
const UTF8: u8 = 1; // `length` bytes at `address`
const UTF16: u8 = 2; // an AssemblyScript string at `address`, `length` code units

const HEADER_BYTES: usize = 24;
const EXTENSION_BYTES: usize = 32; // vtable (16) + table (16)

function align4(value: usize): usize {
  return (value + 3) & ~(<usize>3);
}

/** Bytes a held value takes once encoded as UTF-8. */
function byteLength(address: usize, length: i32, encoding: u8): usize {
  return encoding == UTF16 ? <usize>String.UTF8.byteLength(changetype<string>(address)) : <usize>length;
}

/**
 * Writes a FlatBuffers string (`terminate`) or byte vector at `at`: u32
 * length, the bytes, a NUL for strings, zero padding to 4. Returns the size.
 */
function writeVector(at: usize, address: usize, length: i32, encoding: u8, terminate: bool): usize {
  let size: usize;
  if (encoding == UTF16)
    size = String.UTF8.encodeUnsafe(address, length, at + 4, false, String.UTF8.ErrorMode.REPLACE);
  else {
    size = <usize>length;
    memory.copy(at + 4, address, size);
  }
  store<u32>(at, <u32>size);
  const end = at + 4 + size;
  const padded = align4(4 + size + (terminate ? 1 : 0));
  memory.fill(end, 0, at + padded - end);
  return padded;
}

/** One extension of the event being built. */
class PendingExtension {
  nameAddress: usize = 0;
  nameLength: i32 = 0;
  nameEncoding: u8 = NONE;
  kind: u8 = 0;
  valueAddress: usize = 0;
  valueLength: i32 = 0;
  valueEncoding: u8 = NONE;
  integer: i32 = 0;
  // Keeps a string value alive (the fields above hold only its address).
  held: string | null = null;
  heldName: string | null = null;

  unit(index: i32): u32 {
    return this.nameEncoding == UTF16
      ? <u32>load<u16>(this.nameAddress + ((<usize>index) << 1))
      : <u32>load<u8>(this.nameAddress + <usize>index);
  }

  /** Names are CloudEvents attribute names (ASCII), so code units and bytes order alike. */
  compareName(other: PendingExtension): i32 {
    const length = min(this.nameLength, other.nameLength);
    for (let i = 0; i < length; i++) {
      const a = this.unit(i);
      const b = other.unit(i);
      if (a != b) return a < b ? -1 : 1;
    }
    return this.nameLength - other.nameLength;
  }

  isNamed(name: string): bool {
    if (this.nameLength != name.length) return false;
    for (let i = 0; i < this.nameLength; i++) if (this.unit(i) != <u32>name.charCodeAt(i)) return false;
    return true;
  }
}

/**
 * The event a transform is about to emit: start it with `Output.from(event)`
 * (a copy of an input event to change) or `Output.create()`, set what
 * differs, then `emit()`. Values given as strings, `Bytes` or buffers are held
 * by reference until `emit()` copies them, so they must not change before it.
 */
export class EventBuilder {
  private addresses: StaticArray<usize> = new StaticArray<usize>(SLOT_COUNT);
  private lengths: StaticArray<i32> = new StaticArray<i32>(SLOT_COUNT);
  private encodings: StaticArray<u8> = new StaticArray<u8>(SLOT_COUNT);
  private held: StaticArray<string | null> = new StaticArray<string | null>(SLOT_COUNT);
  /** Per slot, the shared string it points to in this emit (-1: its own copy). */
  private shared: StaticArray<i32> = new StaticArray<i32>(SLOT_COUNT);
  private extensions: Array<PendingExtension> = new Array<PendingExtension>();
  private extensionCount: i32 = 0;

  /** Forgets everything set so far. */
  reset(): EventBuilder {
    for (let slot = 0; slot < SLOT_COUNT; slot++) {
      unchecked((this.encodings[slot] = NONE));
      unchecked((this.held[slot] = null));
    }
    for (let i = 0; i < this.extensionCount; i++) {
      const extension = unchecked(this.extensions[i]);
      extension.held = null;
      extension.heldName = null;
    }
    this.extensionCount = 0;
    return this;
  }

  /** Copies every attribute, extension and the data of `event` (by reference until `emit`). */
  copyFrom(event: Event): EventBuilder {
    const table = changetype<usize>(event);
    for (let slot = 0; slot < SLOT_COUNT; slot++) {
      if (slot == EVENT_EXTENSIONS) continue;
      const target = fieldTarget(table, slot);
      if (target == 0) unchecked((this.encodings[slot] = NONE));
      else this.setRaw(slot, target + 4, <i32>load<u32>(target));
    }
    this.extensionCount = 0;
    const count = event.extensionCount;
    for (let i = 0; i < count; i++) {
      const source = event.extension(i);
      const pending = this.addExtension();
      const name = source.name;
      pending.nameAddress = name.dataStart;
      pending.nameLength = name.length;
      pending.nameEncoding = UTF8;
      pending.kind = source.kind;
      pending.valueEncoding = NONE;
      if (pending.kind == ExtensionKind.Integer) pending.integer = source.integer;
      else if (pending.kind == ExtensionKind.Boolean) pending.integer = source.boolean ? 1 : 0;
      else {
        const value = pending.kind == ExtensionKind.Binary ? source.binary : source.text;
        if (value !== null) {
          pending.valueAddress = value.dataStart;
          pending.valueLength = value.length;
          pending.valueEncoding = UTF8;
        }
      }
    }
    return this;
  }

  private setRaw(slot: i32, address: usize, length: i32): void {
    unchecked((this.addresses[slot] = address));
    unchecked((this.lengths[slot] = length));
    unchecked((this.encodings[slot] = UTF8));
    unchecked((this.held[slot] = null));
  }

  private setText(slot: i32, value: string | null): EventBuilder {
    if (value === null) {
      unchecked((this.encodings[slot] = NONE));
      unchecked((this.held[slot] = null));
      return this;
    }
    unchecked((this.addresses[slot] = changetype<usize>(value)));
    unchecked((this.lengths[slot] = value.length));
    unchecked((this.encodings[slot] = UTF16));
    unchecked((this.held[slot] = value));
    return this;
  }

  private setBytes(slot: i32, value: Bytes | null): EventBuilder {
    if (value === null) unchecked((this.encodings[slot] = NONE));
    else this.setRaw(slot, value.dataStart, value.length);
    return this;
  }

  setId(value: string): EventBuilder {
    return this.setText(EVENT_ID, value);
  }
  setIdBytes(value: Bytes): EventBuilder {
    return this.setBytes(EVENT_ID, value);
  }
  setSource(value: string): EventBuilder {
    return this.setText(EVENT_SOURCE, value);
  }
  setSourceBytes(value: Bytes): EventBuilder {
    return this.setBytes(EVENT_SOURCE, value);
  }
  setType(value: string): EventBuilder {
    return this.setText(EVENT_TYPE, value);
  }
  setTypeBytes(value: Bytes): EventBuilder {
    return this.setBytes(EVENT_TYPE, value);
  }
  /** Null (the default) means "1.0". */
  setSpecversion(value: string | null): EventBuilder {
    return this.setText(EVENT_SPECVERSION, value === '1.0' ? null : value);
  }
  setSubject(value: string | null): EventBuilder {
    return this.setText(EVENT_SUBJECT, value);
  }
  setSubjectBytes(value: Bytes | null): EventBuilder {
    return this.setBytes(EVENT_SUBJECT, value);
  }
  /** RFC 3339 text; the broker checks it when the block comes back. */
  setTime(value: string | null): EventBuilder {
    return this.setText(EVENT_TIME, value);
  }
  setDataContentType(value: string | null): EventBuilder {
    return this.setText(EVENT_DATACONTENTTYPE, value);
  }
  setDataSchema(value: string | null): EventBuilder {
    return this.setText(EVENT_DATASCHEMA, value);
  }

  /** Data as the UTF-8 encoding of `value` (null: no data). */
  setData(value: string | null): EventBuilder {
    return this.setText(EVENT_DATA, value);
  }
  setDataBytes(value: Bytes | null): EventBuilder {
    return this.setBytes(EVENT_DATA, value);
  }
  /** Data as the `length` bytes at `address` (for instance a JSON value inside the input's data). */
  setDataRange(address: usize, length: i32): EventBuilder {
    if (length < 0) fail('setDataRange: negative length');
    this.setRaw(EVENT_DATA, address, length);
    return this;
  }
  /** Data as the current content of `buffer`; it must not change before `emit()`. */
  setDataBuffer(buffer: ByteBuffer): EventBuilder {
    this.setRaw(EVENT_DATA, buffer.dataStart, buffer.length);
    return this;
  }

  private addExtension(): PendingExtension {
    if (this.extensionCount == this.extensions.length) this.extensions.push(new PendingExtension());
    const pending = unchecked(this.extensions[this.extensionCount++]);
    pending.held = null;
    pending.heldName = null;
    pending.valueEncoding = NONE;
    pending.integer = 0;
    return pending;
  }

  private extensionNamed(name: string): PendingExtension {
    for (let i = 0; i < this.extensionCount; i++) {
      const pending = unchecked(this.extensions[i]);
      if (pending.isNamed(name)) {
        pending.valueEncoding = NONE;
        pending.held = null;
        return pending;
      }
    }
    const pending = this.addExtension();
    pending.nameAddress = changetype<usize>(name);
    pending.nameLength = name.length;
    pending.nameEncoding = UTF16;
    pending.heldName = name;
    return pending;
  }

  /** Sets (or replaces) a String extension. Names are lower-case letters and digits (the broker checks). */
  setExtensionString(name: string, value: string): EventBuilder {
    const pending = this.extensionNamed(name);
    pending.kind = ExtensionKind.String;
    pending.valueAddress = changetype<usize>(value);
    pending.valueLength = value.length;
    pending.valueEncoding = UTF16;
    pending.held = value;
    return this;
  }

  setExtensionInteger(name: string, value: i32): EventBuilder {
    const pending = this.extensionNamed(name);
    pending.kind = ExtensionKind.Integer;
    pending.integer = value;
    return this;
  }

  setExtensionBoolean(name: string, value: bool): EventBuilder {
    const pending = this.extensionNamed(name);
    pending.kind = ExtensionKind.Boolean;
    pending.integer = value ? 1 : 0;
    return this;
  }

  removeExtension(name: string): EventBuilder {
    for (let i = 0; i < this.extensionCount; i++) {
      if (!unchecked(this.extensions[i]).isNamed(name)) continue;
      const removed = unchecked(this.extensions[i]);
      for (let j = i + 1; j < this.extensionCount; j++)
        unchecked((this.extensions[j - 1] = this.extensions[j]));
      unchecked((this.extensions[--this.extensionCount] = removed));
      removed.held = null;
      removed.heldName = null;
      break;
    }
    return this;
  }

  /** Appends the event to the output block. Aborts when id, source or type is missing. */
  emit(): void {
    // id, source and type: the first three slots.
    for (let slot = EVENT_ID; slot <= EVENT_TYPE; slot++)
      if (unchecked(this.encodings[slot]) == NONE) fail('an emitted event needs an id, a source and a type');
    this.sortExtensions();
    const extensionCount = this.extensionCount;

    // Sizes first, so the event is written in one pass with forward offsets only.
    let lastSlot = 0;
    let fields = 0;
    let textBytes: usize = 0;
    for (let slot = 0; slot < SLOT_COUNT; slot++) {
      const present = slot == EVENT_EXTENSIONS ? extensionCount > 0 : unchecked(this.encodings[slot]) != NONE;
      if (!present) continue;
      lastSlot = slot;
      fields++;
      if (slot == EVENT_EXTENSIONS) continue;
      const address = unchecked(this.addresses[slot]);
      const length = unchecked(this.lengths[slot]);
      const encoding = unchecked(this.encodings[slot]);
      const shared = encoding == UTF8 && isSharable(slot) ? sharedString(address, length) : -1;
      unchecked((this.shared[slot] = shared));
      if (shared < 0)
        textBytes += align4(4 + byteLength(address, length, encoding) + (slot == EVENT_DATA ? 0 : 1));
    }
    for (let i = 0; i < extensionCount; i++) {
      const pending = unchecked(this.extensions[i]);
      textBytes += align4(4 + byteLength(pending.nameAddress, pending.nameLength, pending.nameEncoding) + 1);
      if (pending.valueEncoding != NONE) {
        const size = byteLength(pending.valueAddress, pending.valueLength, pending.valueEncoding);
        textBytes += align4(4 + size + (pending.kind == ExtensionKind.Binary ? 0 : 1));
      }
    }
    const vtableBytes = <usize>(4 + 2 * (lastSlot + 1));
    const vtableSpace = align4(vtableBytes);
    const tableBytes = <usize>(4 + 4 * fields);
    const extensionSpace: usize =
      extensionCount > 0 ? 4 + 4 * <usize>extensionCount + EXTENSION_BYTES * <usize>extensionCount : 0;
    const total = vtableSpace + tableBytes + extensionSpace + textBytes;

    const vtable = reserveEvent(total, vtableSpace);
    const table = vtable + vtableSpace;
    memory.fill(vtable, 0, vtableSpace);
    store<u16>(vtable, <u16>vtableBytes);
    store<u16>(vtable + 2, <u16>tableBytes);
    store<i32>(table, <i32>vtableSpace);

    let tail = table + tableBytes;
    let extensionVector: usize = 0;
    if (extensionCount > 0) {
      extensionVector = tail;
      tail += 4 + 4 * <usize>extensionCount + EXTENSION_BYTES * <usize>extensionCount;
    }
    let field = table + 4;
    for (let slot = 0; slot < SLOT_COUNT; slot++) {
      if (slot == EVENT_EXTENSIONS) {
        if (extensionCount == 0) continue;
        store<u16>(vtable + 4 + 2 * <usize>slot, <u16>(field - table));
        store<u32>(field, <u32>(extensionVector - field));
        field += 4;
        continue;
      }
      const encoding = unchecked(this.encodings[slot]);
      if (encoding == NONE) continue;
      store<u16>(vtable + 4 + 2 * <usize>slot, <u16>(field - table));
      const shared = unchecked(this.shared[slot]);
      if (shared >= 0) addFixup(field, shared);
      else {
        store<u32>(field, <u32>(tail - field));
        tail += writeVector(
          tail,
          unchecked(this.addresses[slot]),
          unchecked(this.lengths[slot]),
          encoding,
          slot != EVENT_DATA,
        );
      }
      field += 4;
    }
    if (extensionCount > 0) this.writeExtensions(extensionVector, tail);
    this.reset();
  }

  /** Writes the extensions vector at `vector`, their tables after it, and their strings from `tail`. */
  private writeExtensions(vector: usize, tail: usize): usize {
    const count = this.extensionCount;
    store<u32>(vector, <u32>count);
    let entry = vector + 4 + 4 * <usize>count;
    for (let i = 0; i < count; i++) {
      const pending = unchecked(this.extensions[i]);
      const element = vector + 4 + 4 * <usize>i;
      const vtable = entry;
      const table = entry + 16;
      memory.fill(vtable, 0, EXTENSION_BYTES);
      store<u16>(vtable, 16); // vtable bytes: 4 + 2 × 6 slots
      store<u16>(vtable + 2, 16); // table bytes
      store<u16>(vtable + 4, 4); // name
      store<u16>(vtable + 6, 12); // kind
      store<i32>(table, 16);
      store<u32>(element, <u32>(table - element));
      store<u32>(table + 4, <u32>(tail - (table + 4)));
      tail += writeVector(tail, pending.nameAddress, pending.nameLength, pending.nameEncoding, true);
      store<u8>(table + 12, pending.kind);
      if (pending.kind == ExtensionKind.Integer) {
        store<u16>(vtable + 10, 8);
        store<i32>(table + 8, pending.integer);
      } else if (pending.kind == ExtensionKind.Boolean) {
        store<u16>(vtable + 12, 8);
        store<u8>(table + 8, <u8>pending.integer);
      } else if (pending.valueEncoding != NONE) {
        const binary = pending.kind == ExtensionKind.Binary;
        store<u16>(vtable + (binary ? 14 : 8), 8);
        store<u32>(table + 8, <u32>(tail - (table + 8)));
        tail += writeVector(tail, pending.valueAddress, pending.valueLength, pending.valueEncoding, !binary);
      }
      entry += EXTENSION_BYTES;
    }
    return tail;
  }

  private sortExtensions(): void {
    const extensions = this.extensions;
    for (let i = 1; i < this.extensionCount; i++) {
      const current = unchecked(extensions[i]);
      let j = i - 1;
      while (j >= 0 && unchecked(extensions[j]).compareName(current) > 0) {
        unchecked((extensions[j + 1] = extensions[j]));
        j--;
      }
      unchecked((extensions[j + 1] = current));
    }
    for (let i = 1; i < this.extensionCount; i++)
      if (unchecked(extensions[i - 1]).compareName(unchecked(extensions[i])) == 0)
        fail('an emitted event has two extensions of the same name');
  }
}

// The block being built: `block` is a heap allocation of `capacity` bytes;
// events are written from `eventsStart`, the first free byte is `used`.
let block: usize = 0;
let capacity: usize = 0;
let eventsStart: usize = 0;
let used: usize = 0;
// Where each event's table starts, relative to `block`.
let tables: usize = 0;
let tablesCapacity: i32 = 0;
let count: i32 = 0;

const result: usize = memory.data(8, 4);

// Attributes that usually repeat across a batch (source, type, specversion, time, datacontenttype,
// dataschema) are written once, after the events, when they come from the same bytes (the input
// block shares them): the fields point there, patched by finishOutput. Offsets must point forward,
// which is why the shared strings go last.
const SHARED_MAX = 16;
const sharedAddresses = new StaticArray<usize>(SHARED_MAX);
const sharedLengths = new StaticArray<i32>(SHARED_MAX);
let sharedCount = 0;
// Pairs of u32: a field's offset from `block`, and the shared string it points to.
let fixups: usize = 0;
let fixupCapacity: i32 = 0;
let fixupCount: i32 = 0;

function isSharable(slot: i32): bool {
  return (
    slot == EVENT_SOURCE ||
    slot == EVENT_TYPE ||
    slot == EVENT_SPECVERSION ||
    slot == EVENT_TIME ||
    slot == EVENT_DATACONTENTTYPE ||
    slot == EVENT_DATASCHEMA
  );
}

/** The index of the shared string for these bytes, or -1 when there is no room for another. */
function sharedString(address: usize, length: i32): i32 {
  for (let i = 0; i < sharedCount; i++)
    if (unchecked(sharedAddresses[i]) == address && unchecked(sharedLengths[i]) == length) return i;
  if (sharedCount == SHARED_MAX) return -1;
  unchecked((sharedAddresses[sharedCount] = address));
  unchecked((sharedLengths[sharedCount] = length));
  return sharedCount++;
}

function addFixup(field: usize, shared: i32): void {
  if (fixupCount == fixupCapacity) {
    fixupCapacity = max(fixupCapacity << 1, 256);
    fixups =
      fixups == 0
        ? heap.alloc((<usize>fixupCapacity) << 3)
        : heap.realloc(fixups, (<usize>fixupCapacity) << 3);
  }
  const at = fixups + ((<usize>fixupCount) << 3);
  store<u32>(at, <u32>(field - block));
  store<u32>(at + 4, <u32>shared);
  store<u32>(field, 0);
  fixupCount++;
}

function ensureCapacity(bytes: usize): void {
  if (bytes <= capacity) return;
  let grown = max<usize>(capacity << 1, 4096);
  while (grown < bytes) grown <<= 1;
  block = block == 0 ? heap.alloc(grown) : heap.realloc(block, grown);
  capacity = grown;
}

/** Reserves `bytes` for the next event, whose table starts `tableAt` bytes in; returns where it goes. */
function reserveEvent(bytes: usize, tableAt: usize): usize {
  ensureCapacity(used + bytes);
  if (count == tablesCapacity) {
    tablesCapacity = max(tablesCapacity << 1, 64);
    tables =
      tables == 0
        ? heap.alloc((<usize>tablesCapacity) << 2)
        : heap.realloc(tables, (<usize>tablesCapacity) << 2);
  }
  store<u32>(tables + ((<usize>count) << 2), <u32>(used + tableAt));
  count++;
  const at = block + used;
  used += bytes;
  return at;
}

/** Starts an output block with room for `expected` events in front of them (more still fit). */
export function beginOutput(expected: i32): void {
  count = 0;
  sharedCount = 0;
  fixupCount = 0;
  eventsStart = HEADER_BYTES + 4 * <usize>max(expected, 0);
  ensureCapacity(eventsStart + 1024);
  used = eventsStart;
}

/** Finishes the block; returns the address of the result record (u32 address, u32 length). */
export function finishOutput(): usize {
  const needed = HEADER_BYTES + 4 * <usize>count;
  if (needed > eventsStart) {
    // More events than room was left for: move them up.
    const shift = align4(needed - eventsStart);
    ensureCapacity(used + shift);
    memory.copy(block + eventsStart + shift, block + eventsStart, used - eventsStart);
    for (let i = 0; i < count; i++)
      store<u32>(tables + ((<usize>i) << 2), load<u32>(tables + ((<usize>i) << 2)) + <u32>shift);
    for (let i = 0; i < fixupCount; i++)
      store<u32>(fixups + ((<usize>i) << 3), load<u32>(fixups + ((<usize>i) << 3)) + <u32>shift);
    eventsStart += shift;
    used += shift;
  }
  if (sharedCount > 0) {
    let bytes: usize = 0;
    for (let i = 0; i < sharedCount; i++) bytes += align4(4 + <usize>unchecked(sharedLengths[i]) + 1);
    ensureCapacity(used + bytes);
    // Where each shared string lands, kept in the address array (its source is not needed after).
    for (let i = 0; i < sharedCount; i++) {
      const at = used;
      used += writeVector(block + at, unchecked(sharedAddresses[i]), unchecked(sharedLengths[i]), UTF8, true);
      unchecked((sharedAddresses[i] = at));
    }
    for (let i = 0; i < fixupCount; i++) {
      const field = <usize>load<u32>(fixups + ((<usize>i) << 3));
      const target = unchecked(sharedAddresses[load<u32>(fixups + ((<usize>i) << 3) + 4)]);
      store<u32>(block + field, <u32>(target - field));
    }
  }
  store<u32>(block, 12);
  store<u16>(block + 4, 6);
  store<u16>(block + 6, 8);
  store<u16>(block + 8, 4);
  store<u16>(block + 10, 0);
  store<i32>(block + 12, 8);
  store<u32>(block + 16, 4);
  store<u32>(block + 20, <u32>count);
  for (let i = 0; i < count; i++) {
    const element = HEADER_BYTES + 4 * <usize>i;
    store<u32>(block + element, load<u32>(tables + ((<usize>i) << 2)) - <u32>element);
  }
  memory.fill(block + needed, 0, eventsStart - needed);
  store<u32>(result, <u32>block);
  store<u32>(result + 4, <u32>used);
  return result;
}

/** Events emitted so far in this call. */
export function outputCount(): i32 {
  return count;
}

/** What a transform receives to emit events: keep one as it is, change a copy, or make a new one. */
export class Output {
  private builder: EventBuilder = new EventBuilder();

  /** Emits `event` unchanged. */
  keep(event: Event): void {
    this.builder.reset().copyFrom(event).emit();
  }

  /** A copy of `event` to change, then `emit()`. */
  from(event: Event): EventBuilder {
    return this.builder.reset().copyFrom(event);
  }

  /** A new, empty event: set at least id, source and type, then `emit()`. */
  create(): EventBuilder {
    return this.builder.reset();
  }

  /** Events emitted so far in this call. */
  get count(): i32 {
    return count;
  }
}

export const output = new Output();
