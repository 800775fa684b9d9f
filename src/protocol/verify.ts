/**
 * Structural verification of a FlatBuffer against our schema, before any of
 * its fields is read. The JavaScript FlatBuffers runtime trusts the bytes it is
 * given: an offset pointing outside the buffer reads garbage or throws a
 * RangeError from deep inside an accessor, and a crafted cycle of offsets could
 * loop. This checks what the C++ `flatbuffers::Verifier` checks: every offset
 * and length inside the buffer, alignment, vtables well-formed, strings
 * NUL-terminated, union tags known, required fields present, and bounded
 * nesting depth and object count so verification itself is cheap to bound.
 *
 * Driven by `generated/layout.ts`, which `scripts/codegen.mjs` derives from the
 * same `.fbs` as the accessors, so the two cannot drift apart.
 */
import { rootTable, tables, unions } from './generated/layout.js';

export type TableName = keyof typeof tables;

export interface VerifyLimits {
  /** Tables nested inside each other (a Frame holding a message holding a vector of tables is 3). */
  readonly depthMax: number;
  /** Tables, strings and vectors in one buffer. */
  readonly objectsMax: number;
}

// Every object takes at least 4 bytes, so a buffer's size bounds the work as well; the object
// limit only has to stay above what the largest legal batch holds (10,000 events with their
// strings and extensions is a few hundred thousand objects).
export const defaultVerifyLimits: VerifyLimits = { depthMax: 16, objectsMax: 1 << 24 };

type UnionName = keyof typeof unions;

/** What the generated layout says of one field (a union's tag slot is `slot`, its value `slot + 1`). */
type FieldLayout = { readonly name: string; readonly slot: number; readonly required: boolean } & (
  | { readonly kind: 'scalar'; readonly bytes: number }
  | { readonly kind: 'struct'; readonly bytes: number; readonly align: number }
  | { readonly kind: 'string' }
  | { readonly kind: 'table'; readonly table: TableName }
  | { readonly kind: 'union'; readonly union: UnionName }
  | VectorLayout
);

type VectorLayout =
  | { readonly kind: 'vector'; readonly element: 'scalar'; readonly bytes: number }
  | { readonly kind: 'vector'; readonly element: 'struct'; readonly bytes: number; readonly align: number }
  | { readonly kind: 'vector'; readonly element: 'string' }
  | { readonly kind: 'vector'; readonly element: 'table'; readonly table: TableName };

// Fails to compile if the generator ever emits a field this verifier does not understand.
const layouts: Readonly<Record<TableName, readonly FieldLayout[]>> = tables;

const SIZE_UOFFSET = 4;

class Verifier {
  readonly #view: DataView;
  readonly #bytes: Uint8Array;
  readonly #length: number;
  readonly #limits: VerifyLimits;
  #objects = 0;
  /**
   * Objects this buffer may hold: every object takes at least 4 bytes, so a
   * buffer visits at most length / 4 of them — unless its offsets share one
   * object many times over (a vector of a thousand offsets to one table of a
   * thousand offsets…), which would make verifying and decoding a few KiB
   * cost seconds. Twice that leaves room for a writer that shares strings.
   */
  readonly #objectsMax: number;

  constructor(bytes: Uint8Array, limits: VerifyLimits) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#length = bytes.byteLength;
    this.#limits = limits;
    this.#objectsMax = Math.min(limits.objectsMax, Math.ceil(bytes.byteLength / 2));
  }

  root(table: TableName): string | null {
    if (this.#length < 2 * SIZE_UOFFSET)
      return `buffer of ${this.#length} bytes is shorter than a FlatBuffer`;
    return this.#table(this.#follow(0), table, 1);
  }

  /** Where the uoffset stored at `at` points, or -1 if that is outside the buffer. */
  #follow(at: number): number {
    const target = at + this.#view.getUint32(at, true);
    return target < this.#length ? target : -1;
  }

  #count(): boolean {
    return ++this.#objects <= this.#objectsMax;
  }

  #table(position: number, name: TableName, depth: number): string | null {
    if (position < 0 || position % 4 !== 0 || position + 4 > this.#length)
      return `${name}: table offset out of bounds or misaligned`;
    if (depth > this.#limits.depthMax) return `${name}: nested deeper than ${this.#limits.depthMax}`;
    if (!this.#count())
      return `more than ${this.#objectsMax} objects (offsets that share objects, or more than the limit)`;
    const vtable = position - this.#view.getInt32(position, true);
    if (vtable < 0 || vtable % 2 !== 0 || vtable + 4 > this.#length) return `${name}: vtable out of bounds`;
    const vtableBytes = this.#view.getUint16(vtable, true);
    const tableBytes = this.#view.getUint16(vtable + 2, true);
    // The JS runtime reads vtable entries as signed 16-bit: above 0x7fff it would see other offsets.
    if (
      vtableBytes < 4 ||
      vtableBytes % 2 !== 0 ||
      vtableBytes > 0x7fff ||
      vtable + vtableBytes > this.#length
    )
      return `${name}: malformed vtable`;
    if (tableBytes < 4 || position + tableBytes > this.#length) return `${name}: table overruns the buffer`;
    const slots = (vtableBytes - 4) >> 1;
    for (const field of layouts[name]) {
      const reason = this.#field(position, vtable, slots, tableBytes, field, name, depth);
      if (reason !== null) return reason;
    }
    return null;
  }

  /** Offset of a slot's field inside its table, 0 when absent; -1 (never valid) above 0x7fff. */
  #slot(vtable: number, slots: number, slot: number): number {
    const at = slot < slots ? this.#view.getUint16(vtable + 4 + 2 * slot, true) : 0;
    return at > 0x7fff ? -1 : at;
  }

  #field(
    table: number,
    vtable: number,
    slots: number,
    tableBytes: number,
    field: FieldLayout,
    name: TableName,
    depth: number,
  ): string | null {
    const where = `${name}.${field.name}`;
    if (field.kind === 'union') {
      const tagAt = this.#slot(vtable, slots, field.slot);
      const valueAt = this.#slot(vtable, slots, field.slot + 1);
      if (tagAt < 0 || valueAt < 0) return `${where}: field offset out of range`;
      const tag = tagAt === 0 ? 0 : tagAt + 1 <= tableBytes ? this.#view.getUint8(table + tagAt) : -1;
      if (tag < 0) return `${where}: union tag outside its table`;
      const members: readonly TableName[] = unions[field.union];
      if (tag > members.length) return `${where}: unknown union member ${tag}`;
      if (tag === 0 || valueAt === 0) return field.required ? `${where}: required field missing` : null;
      if (valueAt + SIZE_UOFFSET > tableBytes || (table + valueAt) % 4 !== 0)
        return `${where}: offset outside its table or misaligned`;
      return this.#table(this.#follow(table + valueAt), members[tag - 1] as TableName, depth + 1);
    }
    const at = this.#slot(vtable, slots, field.slot);
    if (at < 0) return `${where}: field offset out of range`;
    if (at === 0) return field.required ? `${where}: required field missing` : null;
    const position = table + at;
    switch (field.kind) {
      case 'scalar':
        return at + field.bytes <= tableBytes && position % field.bytes === 0
          ? null
          : `${where}: scalar outside its table or misaligned`;
      case 'struct':
        return at + field.bytes <= tableBytes && position % field.align === 0
          ? null
          : `${where}: struct outside its table or misaligned`;
    }
    if (at + SIZE_UOFFSET > tableBytes || position % 4 !== 0)
      return `${where}: offset outside its table or misaligned`;
    const target = this.#follow(position);
    switch (field.kind) {
      case 'string':
        return this.#string(target, where);
      case 'table':
        return this.#table(target, field.table, depth + 1);
      case 'vector':
        return this.#vector(target, field, where, depth);
    }
  }

  #string(position: number, where: string): string | null {
    if (position < 0 || position % 4 !== 0 || position + 4 > this.#length)
      return `${where}: string offset out of bounds or misaligned`;
    if (!this.#count())
      return `more than ${this.#objectsMax} objects (offsets that share objects, or more than the limit)`;
    const length = this.#view.getUint32(position, true);
    // The terminating NUL must be inside the buffer too.
    if (length >= this.#length - position - 4) return `${where}: string overruns the buffer`;
    return this.#bytes[position + 4 + length] === 0 ? null : `${where}: string not NUL-terminated`;
  }

  #vector(position: number, field: VectorLayout, where: string, depth: number): string | null {
    if (position < 0 || position % 4 !== 0 || position + 4 > this.#length)
      return `${where}: vector offset out of bounds or misaligned`;
    if (!this.#count())
      return `more than ${this.#objectsMax} objects (offsets that share objects, or more than the limit)`;
    const count = this.#view.getUint32(position, true);
    const start = position + 4;
    const elementBytes =
      field.element === 'scalar' || field.element === 'struct' ? field.bytes : SIZE_UOFFSET;
    if (count > (this.#length - start) / elementBytes) return `${where}: vector overruns the buffer`;
    if (field.element === 'struct' && start % field.align !== 0) return `${where}: vector misaligned`;
    if (field.element === 'scalar' || field.element === 'struct') return null;
    for (let i = 0; i < count; i++) {
      const target = this.#follow(start + i * SIZE_UOFFSET);
      const reason =
        field.element === 'table'
          ? this.#table(target, field.table, depth + 1)
          : this.#string(target, `${where}[${i}]`);
      if (reason !== null) return reason;
    }
    return null;
  }
}

/**
 * Checks that `bytes` hold a well-formed FlatBuffer whose root is `table`
 * (a Frame unless told otherwise). Returns why not, or null when every field
 * can be read safely.
 */
export function verifyBuffer(
  bytes: Uint8Array,
  table: TableName = rootTable,
  limits: VerifyLimits = defaultVerifyLimits,
): string | null {
  return new Verifier(bytes, limits).root(table);
}
