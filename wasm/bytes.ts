// Byte views and text helpers. A `Bytes` is a FlatBuffers string or byte
// vector where it lies in linear memory (a u32 length, then the bytes): reading
// an attribute returns one without copying or decoding anything. Comparisons
// with AssemblyScript strings (UTF-16) encode the string on the fly, so they
// allocate nothing either.

/** A length-prefixed run of bytes in linear memory (a FlatBuffers string or `[ubyte]`). */
@final
@unmanaged
export class Bytes {
  /** The view of the length-prefixed bytes at `address`. */
  static at(address: usize): Bytes {
    return changetype<Bytes>(address);
  }

  /** Number of bytes (for a string: UTF-8 bytes, not characters). */
  get length(): i32 {
    return <i32>load<u32>(changetype<usize>(this));
  }

  /** Address of the first byte. */
  get dataStart(): usize {
    return changetype<usize>(this) + 4;
  }

  /** Address just past the last byte. */
  get dataEnd(): usize {
    return changetype<usize>(this) + 4 + <usize>load<u32>(changetype<usize>(this));
  }

  /** The byte at `index`; aborts when out of range. */
  byteAt(index: i32): u8 {
    if (<u32>index >= <u32>this.length) throw new RangeError('Bytes index out of range');
    return load<u8>(this.dataStart + <usize>index);
  }

  /** Whether the bytes are the UTF-8 encoding of `text`. */
  equals(text: string): bool {
    return utf8Match(this.dataStart, this.dataEnd, text) == this.dataEnd;
  }

  startsWith(text: string): bool {
    return utf8Match(this.dataStart, this.dataEnd, text) != 0;
  }

  endsWith(text: string): bool {
    const size = <usize>String.UTF8.byteLength(text);
    const start = this.dataStart;
    const end = this.dataEnd;
    if (size > end - start) return false;
    return utf8Match(end - size, end, text) == end;
  }

  /** Whether `text` occurs in the bytes. */
  contains(text: string): bool {
    return utf8IndexOf(this.dataStart, this.dataEnd, text) >= 0;
  }

  /** Byte position of the first occurrence of `text`, or -1. */
  indexOf(text: string): i32 {
    return utf8IndexOf(this.dataStart, this.dataEnd, text);
  }

  /** Decodes the bytes as UTF-8 into a new string (allocates). */
  toString(): string {
    return String.UTF8.decodeUnsafe(this.dataStart, <usize>this.length);
  }

  /** Copies the bytes into a new buffer (allocates). */
  toArrayBuffer(): ArrayBuffer {
    const copy = new ArrayBuffer(this.length);
    memory.copy(changetype<usize>(copy), this.dataStart, <usize>this.length);
    return copy;
  }
}

/**
 * Matches the UTF-8 encoding of `text` against the bytes from `at` (up to
 * `end`): the position just past the match, or 0 when the bytes differ. Lone
 * surrogates match U+FFFD, as the encoder writes them.
 */
export function utf8Match(at: usize, end: usize, text: string): usize {
  let p = at;
  const units = changetype<usize>(text);
  const count = <usize>text.length;
  for (let i: usize = 0; i < count; i++) {
    let c = <u32>load<u16>(units + (i << 1));
    if (c < 0x80) {
      if (p >= end || <u32>load<u8>(p) != c) return 0;
      p++;
      continue;
    }
    let size: usize;
    if (c < 0x800) size = 2;
    else if (
      (c & 0xfc00) == 0xd800 &&
      i + 1 < count &&
      ((<u32>load<u16>(units + ((i + 1) << 1))) & 0xfc00) == 0xdc00
    ) {
      c = 0x10000 + ((c - 0xd800) << 10) + (<u32>load<u16>(units + ((i + 1) << 1)) - 0xdc00);
      size = 4;
      i++;
    } else {
      if ((c & 0xf800) == 0xd800) c = 0xfffd;
      size = 3;
    }
    if (end - p < size) return 0;
    if (size == 2) {
      if (<u32>load<u8>(p) != (0xc0 | (c >> 6)) || <u32>load<u8>(p + 1) != (0x80 | (c & 0x3f))) return 0;
    } else if (size == 3) {
      if (
        <u32>load<u8>(p) != (0xe0 | (c >> 12)) ||
        <u32>load<u8>(p + 1) != (0x80 | ((c >> 6) & 0x3f)) ||
        <u32>load<u8>(p + 2) != (0x80 | (c & 0x3f))
      )
        return 0;
    } else {
      if (
        <u32>load<u8>(p) != (0xf0 | (c >> 18)) ||
        <u32>load<u8>(p + 1) != (0x80 | ((c >> 12) & 0x3f)) ||
        <u32>load<u8>(p + 2) != (0x80 | ((c >> 6) & 0x3f)) ||
        <u32>load<u8>(p + 3) != (0x80 | (c & 0x3f))
      )
        return 0;
    }
    p += size;
  }
  // An empty text matches anywhere: report the start itself, which is never 0 for real data.
  return p;
}

/** Byte position (from `start`) of the first occurrence of `text` in [start, end), or -1. */
export function utf8IndexOf(start: usize, end: usize, text: string): i32 {
  if (text.length == 0) return 0;
  const first = <u32>load<u16>(changetype<usize>(text));
  for (let p = start; p < end; p++) {
    // A quick test on the first byte when the text starts with ASCII.
    if (first < 0x80 && <u32>load<u8>(p) != first) continue;
    if (utf8Match(p, end, text) != 0) return <i32>(p - start);
  }
  return -1;
}

/**
 * A growable buffer of bytes for building event data (or any text): append
 * pieces, then hand it to `EventBuilder.setDataBuffer`. `reset` empties it
 * and keeps the memory, so one buffer can serve every event of a batch.
 */
export class ByteBuffer {
  private buffer: ArrayBuffer;
  private used: i32 = 0;

  constructor(capacity: i32 = 256) {
    this.buffer = new ArrayBuffer(max(capacity, 16));
  }

  get length(): i32 {
    return this.used;
  }

  get dataStart(): usize {
    return changetype<usize>(this.buffer);
  }

  reset(): ByteBuffer {
    this.used = 0;
    return this;
  }

  /** Makes room for `more` bytes; returns the address where they go. */
  reserve(more: i32): usize {
    if (more < 0) throw new RangeError('ByteBuffer.reserve: negative size');
    const needed = this.used + more;
    if (needed > this.buffer.byteLength) {
      let capacity = this.buffer.byteLength << 1;
      while (capacity < needed) capacity <<= 1;
      const grown = new ArrayBuffer(capacity);
      memory.copy(changetype<usize>(grown), changetype<usize>(this.buffer), <usize>this.used);
      this.buffer = grown;
    }
    return changetype<usize>(this.buffer) + <usize>this.used;
  }

  appendByte(value: u8): ByteBuffer {
    store<u8>(this.reserve(1), value);
    this.used += 1;
    return this;
  }

  /** Appends the `length` bytes at `address` (which may lie in the event block). */
  appendRange(address: usize, length: i32): ByteBuffer {
    memory.copy(this.reserve(length), address, <usize>length);
    this.used += length;
    return this;
  }

  appendBytes(bytes: Bytes | null): ByteBuffer {
    if (bytes !== null) this.appendRange(bytes.dataStart, bytes.length);
    return this;
  }

  /** Appends `text` encoded as UTF-8. */
  appendString(text: string): ByteBuffer {
    const size = String.UTF8.byteLength(text);
    String.UTF8.encodeUnsafe(
      changetype<usize>(text),
      text.length,
      this.reserve(size),
      false,
      String.UTF8.ErrorMode.REPLACE,
    );
    this.used += size;
    return this;
  }

  /** Appends `text` as a JSON string literal: quoted, with `"`, `\` and control characters escaped. */
  appendJsonString(text: string): ByteBuffer {
    this.appendByte(0x22);
    const units = changetype<usize>(text);
    let from = 0;
    for (let i = 0; i < text.length; i++) {
      const c = <u32>load<u16>(units + ((<usize>i) << 1));
      if (c >= 0x20 && c != 0x22 && c != 0x5c) continue;
      if (i > from) this.appendString(text.substring(from, i));
      from = i + 1;
      if (c == 0x22 || c == 0x5c) this.appendByte(0x5c).appendByte(<u8>c);
      else {
        this.appendString('\\u00');
        this.appendByte(<u8>HEX.charCodeAt(c >> 4)).appendByte(<u8>HEX.charCodeAt(c & 0xf));
      }
    }
    if (from == 0) this.appendString(text);
    else if (from < text.length) this.appendString(text.substring(from));
    return this.appendByte(0x22);
  }

  /** Appends an integer in decimal. */
  appendInteger(value: i64): ByteBuffer {
    return this.appendString(value.toString());
  }

  /** Decodes the content as UTF-8 (allocates). */
  toString(): string {
    return String.UTF8.decodeUnsafe(this.dataStart, <usize>this.used);
  }
}

const HEX = '0123456789abcdef';
