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

/** What a field holds, as a small integer: the verifier branches on it for every field of every table. */
const enum Kind {
  Scalar,
  Struct,
  String,
  Table,
  Union,
  ScalarVector,
  StructVector,
  StringVector,
  TableVector,
}

/**
 * A field as the verifier walks it: every field one shape (V8 keeps the property loads on the
 * publish path monomorphic) and tables by number rather than name. Built once from the layout.
 */
class CompiledField {
  constructor(
    readonly layout: FieldLayout,
    readonly table: TableName,
    readonly kind: Kind,
    readonly slot: number,
    readonly required: boolean,
    /** Scalar or struct size; element size of a vector. */
    readonly bytes: number,
    readonly align: number,
    /** The table a table field or table vector holds (its index in `compiled`); -1 otherwise. */
    readonly target: number,
    /** A union's member tables by tag − 1. */
    readonly members: readonly number[],
  ) {}
}

const tableNames = Object.keys(layouts) as TableName[];
const tableIndex = (name: TableName): number => tableNames.indexOf(name);

function compile(table: TableName, field: FieldLayout): CompiledField {
  const make = (kind: Kind, bytes = 0, align = 1, target = -1, members: readonly number[] = []) =>
    new CompiledField(field, table, kind, field.slot, field.required, bytes, align, target, members);
  switch (field.kind) {
    case 'scalar':
      return make(Kind.Scalar, field.bytes, field.bytes);
    case 'struct':
      return make(Kind.Struct, field.bytes, field.align);
    case 'string':
      return make(Kind.String);
    case 'table':
      return make(Kind.Table, 0, 1, tableIndex(field.table));
    case 'union':
      return make(Kind.Union, 0, 1, -1, (unions[field.union] as readonly TableName[]).map(tableIndex));
    case 'vector':
      switch (field.element) {
        case 'scalar':
          return make(Kind.ScalarVector, field.bytes, field.bytes);
        case 'struct':
          return make(Kind.StructVector, field.bytes, field.align);
        case 'string':
          return make(Kind.StringVector, SIZE_UOFFSET);
        case 'table':
          return make(Kind.TableVector, SIZE_UOFFSET, SIZE_UOFFSET, tableIndex(field.table));
      }
  }
}

/** Each table's fields, indexed like `tableNames`. */
const compiled: readonly (readonly CompiledField[])[] = tableNames.map((name) =>
  layouts[name].map((field) => compile(name, field)),
);

/**
 * Why verification failed, as data: the message is only put together for a buffer that fails,
 * so verifying a good one builds no strings.
 */
const enum Problem {
  TableOffset,
  TooDeep,
  TooManyObjects,
  VtableBounds,
  MalformedVtable,
  TableOverrun,
  FieldOffsetRange,
  UnionTagOutside,
  UnknownUnionMember,
  RequiredMissing,
  OffsetOutsideTable,
  ScalarOutside,
  StructOutside,
  StringOffset,
  StringOverrun,
  StringNotTerminated,
  VectorOffset,
  VectorOverrun,
  VectorMisaligned,
}

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
  // Where the first problem was found, for its message.
  #problem = Problem.TableOffset;
  #table = 0;
  #field: CompiledField | null = null;
  #element = -1;
  #tag = 0;

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
    return this.#verifyTable(this.#follow(0), tableIndex(table), 1) ? null : this.#message();
  }

  #fail(problem: Problem, table: number, field: CompiledField | null, element = -1): false {
    this.#problem = problem;
    this.#table = table;
    this.#field = field;
    this.#element = element;
    return false;
  }

  #message(): string {
    const table = tableNames[this.#table] as string;
    const field = this.#field;
    const where =
      field === null
        ? table
        : `${field.table}.${field.layout.name}${this.#element < 0 ? '' : `[${this.#element}]`}`;
    switch (this.#problem) {
      case Problem.TableOffset:
        return `${table}: table offset out of bounds or misaligned`;
      case Problem.TooDeep:
        return `${table}: nested deeper than ${this.#limits.depthMax}`;
      case Problem.TooManyObjects:
        return `more than ${this.#objectsMax} objects (offsets that share objects, or more than the limit)`;
      case Problem.VtableBounds:
        return `${table}: vtable out of bounds`;
      case Problem.MalformedVtable:
        return `${table}: malformed vtable`;
      case Problem.TableOverrun:
        return `${table}: table overruns the buffer`;
      case Problem.FieldOffsetRange:
        return `${where}: field offset out of range`;
      case Problem.UnionTagOutside:
        return `${where}: union tag outside its table`;
      case Problem.UnknownUnionMember:
        return `${where}: unknown union member ${this.#tag}`;
      case Problem.RequiredMissing:
        return `${where}: required field missing`;
      case Problem.OffsetOutsideTable:
        return `${where}: offset outside its table or misaligned`;
      case Problem.ScalarOutside:
        return `${where}: scalar outside its table or misaligned`;
      case Problem.StructOutside:
        return `${where}: struct outside its table or misaligned`;
      case Problem.StringOffset:
        return `${where}: string offset out of bounds or misaligned`;
      case Problem.StringOverrun:
        return `${where}: string overruns the buffer`;
      case Problem.StringNotTerminated:
        return `${where}: string not NUL-terminated`;
      case Problem.VectorOffset:
        return `${where}: vector offset out of bounds or misaligned`;
      case Problem.VectorOverrun:
        return `${where}: vector overruns the buffer`;
      case Problem.VectorMisaligned:
        return `${where}: vector misaligned`;
    }
  }

  /** Where the uoffset stored at `at` points, or -1 if that is outside the buffer. */
  #follow(at: number): number {
    const target = at + this.#view.getUint32(at, true);
    return target < this.#length ? target : -1;
  }

  #count(): boolean {
    return ++this.#objects <= this.#objectsMax;
  }

  #verifyTable(position: number, table: number, depth: number): boolean {
    if (position < 0 || position % 4 !== 0 || position + 4 > this.#length)
      return this.#fail(Problem.TableOffset, table, null);
    if (depth > this.#limits.depthMax) return this.#fail(Problem.TooDeep, table, null);
    if (!this.#count()) return this.#fail(Problem.TooManyObjects, table, null);
    const view = this.#view;
    const vtable = position - view.getInt32(position, true);
    if (vtable < 0 || vtable % 2 !== 0 || vtable + 4 > this.#length)
      return this.#fail(Problem.VtableBounds, table, null);
    const vtableBytes = view.getUint16(vtable, true);
    const tableBytes = view.getUint16(vtable + 2, true);
    // The JS runtime reads vtable entries as signed 16-bit: above 0x7fff it would see other offsets.
    if (
      vtableBytes < 4 ||
      vtableBytes % 2 !== 0 ||
      vtableBytes > 0x7fff ||
      vtable + vtableBytes > this.#length
    )
      return this.#fail(Problem.MalformedVtable, table, null);
    if (tableBytes < 4 || position + tableBytes > this.#length)
      return this.#fail(Problem.TableOverrun, table, null);
    const slots = (vtableBytes - 4) >> 1;
    const fields = compiled[table] as readonly CompiledField[];
    for (let i = 0; i < fields.length; i++) {
      if (!this.#verifyField(position, vtable, slots, tableBytes, fields[i] as CompiledField, table, depth))
        return false;
    }
    return true;
  }

  /** Offset of a slot's field inside its table, 0 when absent; -1 (never valid) above 0x7fff. */
  #slot(vtable: number, slots: number, slot: number): number {
    const at = slot < slots ? this.#view.getUint16(vtable + 4 + 2 * slot, true) : 0;
    return at > 0x7fff ? -1 : at;
  }

  #verifyField(
    table: number,
    vtable: number,
    slots: number,
    tableBytes: number,
    field: CompiledField,
    name: number,
    depth: number,
  ): boolean {
    const kind = field.kind;
    if (kind === Kind.Union) {
      const tagAt = this.#slot(vtable, slots, field.slot);
      const valueAt = this.#slot(vtable, slots, field.slot + 1);
      if (tagAt < 0 || valueAt < 0) return this.#fail(Problem.FieldOffsetRange, name, field);
      const tag = tagAt === 0 ? 0 : tagAt + 1 <= tableBytes ? this.#view.getUint8(table + tagAt) : -1;
      if (tag < 0) return this.#fail(Problem.UnionTagOutside, name, field);
      if (tag > field.members.length) {
        this.#tag = tag;
        return this.#fail(Problem.UnknownUnionMember, name, field);
      }
      if (tag === 0 || valueAt === 0)
        return field.required ? this.#fail(Problem.RequiredMissing, name, field) : true;
      if (valueAt + SIZE_UOFFSET > tableBytes || (table + valueAt) % 4 !== 0)
        return this.#fail(Problem.OffsetOutsideTable, name, field);
      return this.#verifyTable(this.#follow(table + valueAt), field.members[tag - 1] as number, depth + 1);
    }
    const at = this.#slot(vtable, slots, field.slot);
    if (at < 0) return this.#fail(Problem.FieldOffsetRange, name, field);
    if (at === 0) return field.required ? this.#fail(Problem.RequiredMissing, name, field) : true;
    const position = table + at;
    if (kind === Kind.Scalar || kind === Kind.Struct) {
      return at + field.bytes <= tableBytes && position % field.align === 0
        ? true
        : this.#fail(kind === Kind.Scalar ? Problem.ScalarOutside : Problem.StructOutside, name, field);
    }
    if (at + SIZE_UOFFSET > tableBytes || position % 4 !== 0)
      return this.#fail(Problem.OffsetOutsideTable, name, field);
    const target = this.#follow(position);
    if (kind === Kind.String) return this.#verifyString(target, name, field, -1);
    if (kind === Kind.Table) return this.#verifyTable(target, field.target, depth + 1);
    return this.#verifyVector(target, field, name, depth);
  }

  #verifyString(position: number, name: number, field: CompiledField, element: number): boolean {
    if (position < 0 || position % 4 !== 0 || position + 4 > this.#length)
      return this.#fail(Problem.StringOffset, name, field, element);
    if (!this.#count()) return this.#fail(Problem.TooManyObjects, name, field, element);
    const length = this.#view.getUint32(position, true);
    // The terminating NUL must be inside the buffer too.
    if (length >= this.#length - position - 4) return this.#fail(Problem.StringOverrun, name, field, element);
    return this.#bytes[position + 4 + length] === 0
      ? true
      : this.#fail(Problem.StringNotTerminated, name, field, element);
  }

  #verifyVector(position: number, field: CompiledField, name: number, depth: number): boolean {
    if (position < 0 || position % 4 !== 0 || position + 4 > this.#length)
      return this.#fail(Problem.VectorOffset, name, field);
    if (!this.#count()) return this.#fail(Problem.TooManyObjects, name, field);
    const count = this.#view.getUint32(position, true);
    const start = position + 4;
    const kind = field.kind;
    if (count > (this.#length - start) / field.bytes) return this.#fail(Problem.VectorOverrun, name, field);
    if (kind === Kind.StructVector && start % field.align !== 0)
      return this.#fail(Problem.VectorMisaligned, name, field);
    if (kind === Kind.ScalarVector || kind === Kind.StructVector) return true;
    for (let i = 0; i < count; i++) {
      const target = this.#follow(start + i * SIZE_UOFFSET);
      const ok =
        kind === Kind.TableVector
          ? this.#verifyTable(target, field.target, depth + 1)
          : this.#verifyString(target, name, field, i);
      if (!ok) return false;
    }
    return true;
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
