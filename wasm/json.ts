// Looking up fields of JSON event data in place. A path names a field by its
// keys from the top-level object, separated by dots ("customer.email"); a
// segment of digits indexes an array ("items.0.sku"). Lookups scan the bytes
// once, skipping the values they pass over, and never read outside the data,
// however malformed it is: malformed JSON reads as "not found". Nothing is
// allocated, except by `jsonString`, `decodeJsonString` and `jsonArray`.

import { Bytes } from './bytes';

/** What a found value is (`JsonValue.kind`). */
export namespace JsonKind {
  export const Missing: u8 = 0;
  export const String: u8 = 1;
  export const Number: u8 = 2;
  export const Object: u8 = 3;
  export const Array: u8 = 4;
  export const True: u8 = 5;
  export const False: u8 = 6;
  export const Null: u8 = 7;
}

/**
 * The value the last successful `jsonFind`/`jsonFindIn` found: its bytes in
 * memory (for a string, quotes included) and its kind. Overwritten by the next
 * lookup.
 */
export class JsonValue {
  static start: usize = 0;
  static end: usize = 0;
  static kind: u8 = 0;
}

// Set by scanValue: the kind of the value it passed over.
let scannedKind: u8 = 0;

function isSpace(c: u32): bool {
  return c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09;
}

function skipSpace(p: usize, end: usize): usize {
  while (p < end && isSpace(<u32>load<u8>(p))) p++;
  return p;
}

/** Position just past the closing quote of the string whose content starts at `p`, or 0. */
function scanString(p: usize, end: usize): usize {
  while (p < end) {
    const c = <u32>load<u8>(p);
    if (c == 0x22) return p + 1;
    p += c == 0x5c ? 2 : 1;
  }
  return 0;
}

function scanLiteral(p: usize, end: usize, word: string, kind: u8): usize {
  const size = <usize>word.length;
  if (end - p < size) return 0;
  for (let i: usize = 0; i < size; i++) if (<u32>load<u8>(p + i) != <u32>word.charCodeAt(<i32>i)) return 0;
  scannedKind = kind;
  return p + size;
}

/** Position just past the value starting at `p` (which is not a space), or 0 when it is malformed. */
function scanValue(p: usize, end: usize): usize {
  if (p >= end) return 0;
  const c = <u32>load<u8>(p);
  if (c == 0x22) {
    scannedKind = JsonKind.String;
    return scanString(p + 1, end);
  }
  if (c == 0x7b || c == 0x5b) {
    scannedKind = c == 0x7b ? JsonKind.Object : JsonKind.Array;
    let depth = 0;
    while (p < end) {
      const d = <u32>load<u8>(p);
      if (d == 0x22) {
        p = scanString(p + 1, end);
        if (p == 0) return 0;
        continue;
      }
      if (d == 0x7b || d == 0x5b) depth++;
      else if (d == 0x7d || d == 0x5d) {
        depth--;
        if (depth == 0) return p + 1;
      }
      p++;
    }
    return 0;
  }
  if (c == 0x74) return scanLiteral(p, end, 'true', JsonKind.True);
  if (c == 0x66) return scanLiteral(p, end, 'false', JsonKind.False);
  if (c == 0x6e) return scanLiteral(p, end, 'null', JsonKind.Null);
  if (c == 0x2d || (c >= 0x30 && c <= 0x39)) {
    scannedKind = JsonKind.Number;
    p++;
    while (p < end) {
      const d = <u32>load<u8>(p);
      if ((d >= 0x30 && d <= 0x39) || d == 0x2e || d == 0x65 || d == 0x45 || d == 0x2b || d == 0x2d) p++;
      else break;
    }
    return p;
  }
  return 0;
}

/** The next UTF-16 code unit of a JSON string's content at `p` (escapes decoded); see `keyUnitEnd`. */
let keyUnitEnd: usize = 0;
let pendingLowSurrogate: u32 = 0;

function hexValue(c: u32): i32 {
  if (c >= 0x30 && c <= 0x39) return <i32>(c - 0x30);
  c |= 0x20;
  if (c >= 0x61 && c <= 0x66) return <i32>(c - 0x61 + 10);
  return -1;
}

/** Decodes one UTF-16 unit of string content at `p` (before `end`); -1 when malformed. Sets keyUnitEnd. */
function nextUnit(p: usize, end: usize): i32 {
  if (pendingLowSurrogate != 0) {
    const low = pendingLowSurrogate;
    pendingLowSurrogate = 0;
    keyUnitEnd = p;
    return <i32>low;
  }
  const c = <u32>load<u8>(p);
  if (c == 0x5c) {
    if (p + 1 >= end) return -1;
    const e = <u32>load<u8>(p + 1);
    keyUnitEnd = p + 2;
    if (e == 0x6e) return 0x0a;
    if (e == 0x74) return 0x09;
    if (e == 0x72) return 0x0d;
    if (e == 0x62) return 0x08;
    if (e == 0x66) return 0x0c;
    if (e == 0x75) {
      if (end - p < 6) return -1;
      let unit = 0;
      for (let i: usize = 2; i < 6; i++) {
        const h = hexValue(<u32>load<u8>(p + i));
        if (h < 0) return -1;
        unit = (unit << 4) | h;
      }
      keyUnitEnd = p + 6;
      return unit;
    }
    return <i32>e; // \" \\ \/ and anything else stand for themselves
  }
  if (c < 0x80) {
    keyUnitEnd = p + 1;
    return <i32>c;
  }
  const size: usize = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
  if (end - p < size) return -1;
  let cp: u32 = size == 2 ? c & 0x1f : size == 3 ? c & 0x0f : c & 0x07;
  for (let i: usize = 1; i < size; i++) cp = (cp << 6) | ((<u32>load<u8>(p + i)) & 0x3f);
  keyUnitEnd = p + size;
  if (cp >= 0x10000) {
    cp -= 0x10000;
    pendingLowSurrogate = 0xdc00 | (cp & 0x3ff);
    return <i32>(0xd800 | (cp >> 10));
  }
  return <i32>cp;
}

/** Whether the JSON string content [start, end) decodes to path[from, to). */
function contentEquals(start: usize, end: usize, path: string, from: i32, to: i32): bool {
  // Fast path: plain ASCII bytes against the code units, until an escape or a multi-byte character.
  const units = changetype<usize>(path);
  let q = start;
  let j = from;
  while (q < end && j < to) {
    const b = <u32>load<u8>(q);
    if (b == 0x5c || b >= 0x80) break;
    if (b != <u32>load<u16>(units + ((<usize>j) << 1))) return false;
    q++;
    j++;
  }
  if (q == end) return j == to;
  if (j == to) return false;
  return slowContentEquals(q, end, path, j, to);
}

function slowContentEquals(start: usize, end: usize, path: string, from: i32, to: i32): bool {
  pendingLowSurrogate = 0;
  let p = start;
  let i = from;
  while (p < end || pendingLowSurrogate != 0) {
    if (i >= to) return false;
    const unit = nextUnit(p, end);
    if (unit < 0 || unit != <i32>path.charCodeAt(i)) {
      pendingLowSurrogate = 0;
      return false;
    }
    p = keyUnitEnd;
    i++;
  }
  return i == to;
}

function isIndex(path: string, from: i32, to: i32): bool {
  if (from >= to) return false;
  for (let i = from; i < to; i++) {
    const c = path.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** Finds the member path[from, to) of the object, or element of the array, whose value starts at `p`. */
function findMember(p: usize, end: usize, path: string, from: i32, to: i32): usize {
  const open = <u32>load<u8>(p);
  if (open == 0x5b) {
    if (!isIndex(path, from, to)) return 0;
    const index = I32.parseInt(path.substring(from, to));
    p = skipSpace(p + 1, end);
    for (let i = 0; p < end; i++) {
      if (<u32>load<u8>(p) == 0x5d) return 0;
      if (i == index) return p;
      p = scanValue(p, end);
      if (p == 0) return 0;
      p = skipSpace(p, end);
      if (p >= end || <u32>load<u8>(p) != 0x2c) return 0;
      p = skipSpace(p + 1, end);
    }
    return 0;
  }
  if (open != 0x7b) return 0;
  p = skipSpace(p + 1, end);
  while (p < end) {
    const c = <u32>load<u8>(p);
    if (c != 0x22) return 0;
    const keyStart = p + 1;
    const keyEnd = scanString(keyStart, end);
    if (keyEnd == 0) return 0;
    p = skipSpace(keyEnd, end);
    if (p >= end || <u32>load<u8>(p) != 0x3a) return 0;
    p = skipSpace(p + 1, end);
    if (contentEquals(keyStart, keyEnd - 1, path, from, to)) return p < end ? p : 0;
    p = scanValue(p, end);
    if (p == 0) return 0;
    p = skipSpace(p, end);
    if (p >= end || <u32>load<u8>(p) != 0x2c) return 0;
    p = skipSpace(p + 1, end);
  }
  return 0;
}

/**
 * Finds `path` in the JSON text [start, end); on success sets `JsonValue` and
 * returns true. An empty path names the whole text.
 */
export function jsonFindIn(start: usize, end: usize, path: string): bool {
  let p = skipSpace(start, end);
  let from = 0;
  const length = path.length;
  while (from < length) {
    let to = path.indexOf('.', from);
    if (to < 0) to = length;
    if (p >= end) return false;
    p = findMember(p, end, path, from, to);
    if (p == 0) return false;
    from = to + 1;
  }
  const valueEnd = scanValue(p, end);
  if (valueEnd == 0) return false;
  JsonValue.start = p;
  JsonValue.end = valueEnd;
  JsonValue.kind = scannedKind;
  return true;
}

/** Finds `path` in event data holding JSON; see `jsonFindIn`. False when there is no data. */
export function jsonFind(data: Bytes | null, path: string): bool {
  if (data === null) return false;
  return jsonFindIn(data.dataStart, data.dataEnd, path);
}

export function jsonHas(data: Bytes | null, path: string): bool {
  return jsonFind(data, path);
}

/** The number at `path`, or NaN when it is absent or not a number. */
export function jsonNumber(data: Bytes | null, path: string): f64 {
  if (!jsonFind(data, path) || JsonValue.kind != JsonKind.Number) return NaN;
  return parseJsonNumber(JsonValue.start, JsonValue.end);
}

/** The Boolean at `path`, or `fallback` when it is absent or not a Boolean. */
export function jsonBoolean(data: Bytes | null, path: string, fallback: bool = false): bool {
  if (!jsonFind(data, path)) return fallback;
  if (JsonValue.kind == JsonKind.True) return true;
  if (JsonValue.kind == JsonKind.False) return false;
  return fallback;
}

/** The string at `path`, decoded (allocates), or null when it is absent or not a string. */
export function jsonString(data: Bytes | null, path: string): string | null {
  if (!jsonFind(data, path) || JsonValue.kind != JsonKind.String) return null;
  return decodeJsonString(JsonValue.start + 1, JsonValue.end - 1);
}

/** Whether the value at `path` is a string equal to `value` (escapes decoded; allocates nothing). */
export function jsonStringEquals(data: Bytes | null, path: string, value: string): bool {
  if (!jsonFind(data, path) || JsonValue.kind != JsonKind.String) return false;
  return contentEquals(JsonValue.start + 1, JsonValue.end - 1, value, 0, value.length);
}

const POWERS_OF_TEN: StaticArray<f64> = [
  1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19,
  1e20, 1e21, 1e22,
];

function scale(value: f64, exponent: i32): f64 {
  if (exponent == 0 || value == 0) return value;
  if (exponent > 0)
    return exponent <= 22 ? value * unchecked(POWERS_OF_TEN[exponent]) : value * Math.pow(10, exponent);
  return exponent >= -22 ? value / unchecked(POWERS_OF_TEN[-exponent]) : value / Math.pow(10, -exponent);
}

/**
 * Parses the JSON number in [start, end). Exact for integers up to 2^53 and
 * correctly rounded for up to 15 significant digits with small exponents;
 * NaN when the text is not a number.
 */
export function parseJsonNumber(start: usize, end: usize): f64 {
  let p = start;
  let negative = false;
  if (p < end && <u32>load<u8>(p) == 0x2d) {
    negative = true;
    p++;
  }
  let mantissa: u64 = 0;
  let digits = 0;
  let exponent = 0;
  let any = false;
  while (p < end) {
    const c = <u32>load<u8>(p) - 0x30;
    if (c > 9) break;
    any = true;
    if (digits < 19) {
      mantissa = mantissa * 10 + <u64>c;
      if (mantissa != 0) digits++;
    } else exponent++;
    p++;
  }
  if (p < end && <u32>load<u8>(p) == 0x2e) {
    p++;
    while (p < end) {
      const c = <u32>load<u8>(p) - 0x30;
      if (c > 9) break;
      any = true;
      if (digits < 19) {
        mantissa = mantissa * 10 + <u64>c;
        if (mantissa != 0) digits++;
        exponent--;
      }
      p++;
    }
  }
  if (!any) return NaN;
  if (p < end && ((<u32>load<u8>(p)) | 0x20) == 0x65) {
    p++;
    let sign = 1;
    if (p < end && (<u32>load<u8>(p) == 0x2b || <u32>load<u8>(p) == 0x2d)) {
      if (<u32>load<u8>(p) == 0x2d) sign = -1;
      p++;
    }
    let e = 0;
    let anyExponent = false;
    while (p < end) {
      const c = <u32>load<u8>(p) - 0x30;
      if (c > 9) break;
      anyExponent = true;
      if (e < 100000) e = e * 10 + <i32>c;
      p++;
    }
    if (!anyExponent) return NaN;
    exponent += sign * e;
  }
  if (p != end) return NaN;
  const value = scale(<f64>mantissa, exponent);
  return negative ? -value : value;
}

/** Decodes JSON string content [start, end) (without its quotes): escapes resolved. Allocates. */
export function decodeJsonString(start: usize, end: usize): string {
  let plain = true;
  for (let p = start; p < end; p++) {
    if (<u32>load<u8>(p) == 0x5c) {
      plain = false;
      break;
    }
  }
  if (plain) return String.UTF8.decodeUnsafe(start, end - start);
  const units = new Array<u16>();
  pendingLowSurrogate = 0;
  let p = start;
  while (p < end || pendingLowSurrogate != 0) {
    const unit = nextUnit(p, end);
    if (unit < 0) break;
    units.push(<u16>unit);
    p = keyUnitEnd;
  }
  pendingLowSurrogate = 0;
  return String.UTF16.decodeUnsafe(units.dataStart, (<usize>units.length) << 1);
}

/**
 * Steps through the elements of a JSON array: `next()` moves to the next
 * element and sets `start`, `end` and `kind` to it (as `JsonValue` does).
 */
export class JsonArray {
  start: usize = 0;
  end: usize = 0;
  kind: u8 = 0;
  /** Elements visited so far. */
  index: i32 = -1;
  private position: usize;
  private limit: usize;

  /** The array whose `[` is at `open`, ending no later than `limit`. */
  constructor(open: usize, limit: usize) {
    this.position = open + 1;
    this.limit = limit;
  }

  next(): bool {
    let p = skipSpace(this.position, this.limit);
    if (p >= this.limit) return false;
    if (this.index >= 0) {
      if (<u32>load<u8>(p) != 0x2c) return false;
      p = skipSpace(p + 1, this.limit);
    }
    if (p >= this.limit || <u32>load<u8>(p) == 0x5d) return false;
    const valueEnd = scanValue(p, this.limit);
    if (valueEnd == 0) return false;
    this.start = p;
    this.end = valueEnd;
    this.kind = scannedKind;
    this.index++;
    this.position = valueEnd;
    return true;
  }
}

/** The array at `path` to step through, or null when it is absent or not an array. */
export function jsonArray(data: Bytes | null, path: string): JsonArray | null {
  if (!jsonFind(data, path) || JsonValue.kind != JsonKind.Array) return null;
  return new JsonArray(JsonValue.start, JsonValue.end);
}
