import { describe, expect, it } from 'vitest';
import { compileLike } from '../../src/filters/cesql/like.js';
import { seededRandom } from '../helpers/random.js';

/** What LIKE means, spelled as a regular expression: the oracle for the randomized test. */
function reference(pattern: string, text: string): boolean {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charAt(i);
    const next = pattern.charAt(i + 1);
    if (c === '\\' && (next === '%' || next === '_')) {
      source += next;
      i++;
    } else if (c === '%') source += '.*';
    else if (c === '_') source += '.';
    else source += c.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 'su').test(text);
}

const like = (text: string, pattern: string) => compileLike(pattern)(text);

describe('filters > cesql > like', () => {
  it('matches a pattern without wildcards only exactly', () => {
    expect(like('abc', 'abc')).toBe(true);
    expect(like('abcd', 'abc')).toBe(false);
    expect(like('ABC', 'abc')).toBe(false);
    expect(like('', '')).toBe(true);
  });

  it('lets % match any run of characters, the empty one included', () => {
    expect(like('', '%')).toBe(true);
    expect(like('a', 'a%')).toBe(true);
    expect(like('xa', '%a')).toBe(true);
    expect(like('xay', '%a%')).toBe(true);
    expect(like('xy', '%a%')).toBe(false);
    expect(like('ab', 'a%b')).toBe(true);
    expect(like('a%%b', 'a%%b')).toBe(true);
  });

  it('keeps the prefix and suffix of a%b from overlapping', () => {
    expect(like('a', 'a%a')).toBe(false);
    expect(like('aa', 'a%a')).toBe(true);
    expect(like('aXb', 'a_%_b')).toBe(false);
  });

  it('matches _ against one code point, not one UTF-16 unit', () => {
    expect(like('😀', '_')).toBe(true);
    expect(like('😀', '__')).toBe(false);
    expect(like('a😀b', 'a_b')).toBe(true);
    expect(like('a😀b', '%_b')).toBe(true);
    expect(like('😀b😀', '%b_')).toBe(true);
    expect(like('😀😀x', '%_x')).toBe(true);
  });

  it('matches escaped wildcards literally and keeps any other backslash', () => {
    expect(like('a%', 'a\\%')).toBe(true);
    expect(like('ab', 'a\\%')).toBe(false);
    expect(like('a_', 'a\\_')).toBe(true);
    expect(like('ab', 'a\\_')).toBe(false);
    expect(like('a\\b', 'a\\b')).toBe(true);
    expect(like('a\\', 'a\\')).toBe(true);
  });

  it('stays linear on patterns that make backtracking matchers explode', () => {
    const text = 'a'.repeat(20_000);
    expect(like(text, '%a%a%a%a%a%a%a%a%b')).toBe(false);
    expect(like(text, '%_a%_a%_a%_a%_a%_b')).toBe(false);
    expect(like(`${text}b`, '%a_a%a_%b')).toBe(true);
  });

  it('agrees with a regular-expression oracle on random patterns and texts', () => {
    const random = seededRandom(5);
    const pick = (alphabet: readonly string[], max: number) =>
      Array.from(
        { length: Math.floor(random() * (max + 1)) },
        () => alphabet[Math.floor(random() * alphabet.length)],
      ).join('');
    for (let n = 0; n < 5_000; n++) {
      const pattern = pick(['a', 'b', '%', '_', '\\', '\\%', '\\_', '😀'], 6);
      const text = pick(['a', 'b', '%', '_', '\\', '😀'], 8);
      expect(like(text, pattern), `${JSON.stringify(text)} LIKE ${JSON.stringify(pattern)}`).toBe(
        reference(pattern, text),
      );
    }
  });
});
