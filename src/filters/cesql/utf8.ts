/**
 * String attributes compared with String literals as UTF-8 bytes, for readers
 * of events held as bytes (Eddy's stored event blocks): there, decoding an
 * attribute into a string costs more than the comparison itself, and makes
 * one string per event read (docs/performance.md#filters).
 *
 * Why a byte test gives exactly the string test's answer. The reader promises
 * that its String value is the UTF-8 decoding of the range it shows, invalid
 * sequences read as U+FFFD (as TextDecoder reads them; a BOM it strips lies
 * outside the range). A literal is compared as bytes only when encoding it
 * loses nothing — no lone surrogate, which TextEncoder writes as U+FFFD — and
 * when it has no U+FFFD, the decoder's stand-in for invalid bytes. Then:
 *
 * - over valid UTF-8, encoding is one-to-one and the literal starts and ends
 *   on code point boundaries, so equality, prefix, suffix and containment
 *   hold of the bytes exactly when they hold of the decoded text;
 * - over invalid UTF-8, the decoder emits every code point but U+FFFD from
 *   exactly its own encoding, and starts afresh at every ASCII or lead byte,
 *   which is how every encoded literal starts: the literal's code points are
 *   in the decoded text exactly where its bytes are in the range.
 *
 * test/filters/cesql-utf8.test.ts checks the tests below against the decoder
 * over random bytes, valid and not.
 */
import type { LiteralPattern } from './like.js';

/** What `Utf8Attributes.locate` found. */
export const Located = { missing: 0, string: 1, other: 2 } as const;
export type Located = (typeof Located)[keyof typeof Located];

export interface Utf8Attributes<Source> {
  /**
   * Finds attribute `name` (lower case; never `data` or a data path) of
   * `source`: `string`, with `bytes`, `start` and `end` set to the value's
   * UTF-8 bytes, when it is a String; `missing` when the reader would give
   * `undefined` or `null`; `other` for any other value, which the engine then
   * reads through the reader.
   */
  locate(source: Source, name: string): Located;
  readonly bytes: Uint8Array;
  readonly start: number;
  readonly end: number;
}

/** A test of the bytes from `start` up to, not including, `end`. */
export type BytesTest = (bytes: Uint8Array, start: number, end: number) => boolean;

const encoder = new TextEncoder();
/** Keeps a leading U+FEFF, so that the round trip below changes nothing but lone surrogates. */
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });

/** The literal's UTF-8 bytes when a byte test may stand for the string test (see above), else `undefined`. */
export function utf8Literal(text: string): Uint8Array | undefined {
  if (text.includes('\uFFFD')) return undefined;
  const bytes = encoder.encode(text);
  return decoder.decode(bytes) === text ? bytes : undefined;
}

/** Whether `literal` is in `bytes` at `at` (the caller has checked that it fits). */
function bytesAt(bytes: Uint8Array, at: number, literal: Uint8Array): boolean {
  for (let i = 0; i < literal.length; i++) if (bytes[at + i] !== literal[i]) return false;
  return true;
}

function equal(bytes: Uint8Array, start: number, end: number, literal: Uint8Array): boolean {
  return end - start === literal.length && bytesAt(bytes, start, literal);
}

/** Equal to one of `literals`: `=` with one, `IN` with several. */
export function equalsOneOf(literals: readonly Uint8Array[]): BytesTest {
  const [only] = literals;
  if (literals.length === 1 && only !== undefined)
    return (bytes, start, end) => equal(bytes, start, end, only);
  return (bytes, start, end) => {
    for (let i = 0; i < literals.length; i++)
      if (equal(bytes, start, end, literals[i] as Uint8Array)) return true;
    return false;
  };
}

/**
 * Infixes longer than this are left to the string search: the byte search
 * below is the plain one, at most this many byte comparisons per position.
 */
const infixBytesMax = 64;

/** The byte test of a LIKE pattern of one of the literal shapes, or `undefined` when none serves. */
export function likeTest(pattern: LiteralPattern): BytesTest | undefined {
  switch (pattern.kind) {
    case 'exact': {
      const literal = utf8Literal(pattern.text);
      return literal === undefined ? undefined : equalsOneOf([literal]);
    }
    case 'infix': {
      const infix = utf8Literal(pattern.text);
      if (infix === undefined || infix.length > infixBytesMax) return undefined;
      return (bytes, start, end) => {
        const last = end - infix.length;
        const first = infix[0];
        for (let at = start; at <= last; at++)
          if (bytes[at] === first && bytesAt(bytes, at, infix)) return true;
        return false;
      };
    }
    case 'ends': {
      const prefix = utf8Literal(pattern.prefix);
      const suffix = utf8Literal(pattern.suffix);
      if (prefix === undefined || suffix === undefined) return undefined;
      // The pieces may not overlap: `ab%b` does not match `ab`.
      const shortest = prefix.length + suffix.length;
      return (bytes, start, end) =>
        end - start >= shortest &&
        bytesAt(bytes, start, prefix) &&
        bytesAt(bytes, end - suffix.length, suffix);
    }
  }
}
