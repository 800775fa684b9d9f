/**
 * Strings measured in characters as CESQL means them — Unicode code points —
 * over JS strings, which count UTF-16 units. Strings without surrogates (almost
 * all attribute values) take the plain UTF-16 path.
 */
const surrogate = /[\uD800-\uDFFF]/;

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

/** UTF-16 units of the code point starting at `at`. */
export function widthAt(text: string, at: number): number {
  return isHighSurrogate(text.charCodeAt(at)) && isLowSurrogate(text.charCodeAt(at + 1)) ? 2 : 1;
}

/** UTF-16 units of the code point ending at `at`. */
export function widthBefore(text: string, at: number): number {
  return at >= 2 && isLowSurrogate(text.charCodeAt(at - 1)) && isHighSurrogate(text.charCodeAt(at - 2))
    ? 2
    : 1;
}

export function characterCount(text: string): number {
  if (!surrogate.test(text)) return text.length;
  let count = 0;
  for (let at = 0; at < text.length; at += widthAt(text, at)) count++;
  return count;
}

/** The characters from index `start` up to, not including, `end` (code point indexes, 0-based). */
export function sliceCharacters(text: string, start: number, end: number): string {
  if (!surrogate.test(text)) return text.slice(start, end);
  return Array.from(text).slice(start, end).join('');
}
