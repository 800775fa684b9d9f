import { describe, expect, it } from 'vitest';
import { compileLike, literalPattern } from '../../src/filters/cesql/like.js';
import { equalsOneOf, likeTest, utf8Literal } from '../../src/filters/cesql/utf8.js';
import { seededRandom } from '../helpers/random.js';

/** How the readers' String values come from bytes: invalid sequences as U+FFFD (a BOM is the reader's to skip). */
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
const encoder = new TextEncoder();

/** Pieces of text: ASCII, 2-, 3- and 4-byte characters, BOM, U+FFFD, lone surrogates, LIKE's own characters. */
const characters = [
  'a',
  'b',
  '%',
  '_',
  '\\',
  'é',
  '€',
  '😀',
  '\uFEFF',
  '\uFFFD',
  '\uD83D',
  '\uDE00',
] as const;

/** Pieces of bytes: encoded characters, and bytes that no valid UTF-8 has there. */
const byteRuns: readonly (readonly number[])[] = [
  ...['a', 'b', 'é', '€', '😀', '\uFEFF'].map((c) => [...encoder.encode(c)]),
  [0x80],
  [0xbf],
  [0xc3],
  [0xe2, 0x82],
  [0xef, 0xbb],
  [0xf0, 0x9f, 0x98],
  [0xff],
  [0xed, 0xa0, 0x80], // an encoded surrogate: invalid in UTF-8
];

describe('filters > cesql > utf8', () => {
  const random = seededRandom(11);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const text = (max: number) =>
    Array.from({ length: Math.floor(random() * (max + 1)) }, () => pick(characters)).join('');
  /** Random bytes with the text of interest in the middle, so that the tests must respect `start` and `end`. */
  const framed = (max: number) => {
    const inner = Array.from({ length: Math.floor(random() * (max + 1)) }, () => pick(byteRuns)).flat();
    return { bytes: new Uint8Array([0x61, ...inner, 0x62]), start: 1, end: 1 + inner.length };
  };

  it('compares as bytes only literals that encoding leaves intact and that hold no U+FFFD', () => {
    expect(utf8Literal('type.x')).toEqual(encoder.encode('type.x'));
    expect(utf8Literal('é😀\uFEFF')).toEqual(encoder.encode('é😀\uFEFF'));
    expect(utf8Literal('a\uD83D')).toBeUndefined(); // a lone surrogate
    expect(utf8Literal('\uDE00a')).toBeUndefined();
    expect(utf8Literal('a\uFFFD')).toBeUndefined();
  });

  it('gives = and IN the answers of comparing the decoded strings, over valid and invalid bytes', () => {
    for (let n = 0; n < 20_000; n++) {
      const literals = Array.from({ length: 1 + Math.floor(random() * 3) }, () => text(3));
      const encoded = literals.map(utf8Literal);
      if (encoded.some((literal) => literal === undefined)) continue;
      // Half the time, the bytes are one of the literals exactly.
      const { bytes, start, end } =
        random() < 0.5 ? framed(4) : { bytes: encoded[0] as Uint8Array, start: 0, end: encoded[0]!.length };
      const decoded = decoder.decode(bytes.subarray(start, end));
      expect(
        equalsOneOf(encoded as Uint8Array[])(bytes, start, end),
        `${JSON.stringify(decoded)} IN ${JSON.stringify(literals)}`,
      ).toBe(literals.includes(decoded));
    }
  });

  it('gives literal LIKE patterns the string matcher’s answers, over valid and invalid bytes', () => {
    let compared = 0;
    for (let n = 0; n < 40_000; n++) {
      const pattern = text(4);
      const literal = literalPattern(pattern);
      const test = literal === undefined ? undefined : likeTest(literal);
      if (test === undefined) continue;
      compared++;
      const { bytes, start, end } = framed(5);
      const decoded = decoder.decode(bytes.subarray(start, end));
      expect(test(bytes, start, end), `${JSON.stringify(decoded)} LIKE ${JSON.stringify(pattern)}`).toBe(
        compileLike(pattern)(decoded),
      );
    }
    expect(compared).toBeGreaterThan(5_000);
  });

  it('leaves patterns with _ and long infixes to the string matcher', () => {
    expect(literalPattern('a_%')).toBeUndefined();
    expect(likeTest(literalPattern(`%${'x'.repeat(65)}%`)!)).toBeUndefined();
    expect(likeTest(literalPattern(`%${'x'.repeat(64)}%`)!)).toBeDefined();
    expect(likeTest(literalPattern('%\uFFFD')!)).toBeUndefined();
  });
});
