/**
 * Finds where a top-level member's value sits in JSON text, so `data` is kept exactly as the
 * producer wrote it: JSON.parse then JSON.stringify would round integers beyond 2^53 and lose
 * the producer's formatting. Runs only on text JSON.parse has already accepted, so it skips
 * tokens instead of checking them; running off the end means that contract was broken.
 */

export interface Span {
  readonly start: number;
  readonly end: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

function isWhitespace(code: number): boolean {
  return code === 0x20 || code === 0x0a || code === 0x0d || code === 0x09;
}

function notJson(): never {
  throw new Error('json-span: the text is not JSON, although JSON.parse accepted it');
}

export function skipWhitespace(text: string, at: number): number {
  let i = at;
  while (isWhitespace(text.charCodeAt(i))) i++;
  return i;
}

/** From an opening quote to just past its closing quote. */
function skipString(text: string, at: number): number {
  let from = at + 1;
  for (;;) {
    const quote = text.indexOf('"', from);
    if (quote === -1) notJson();
    // The quote closes the string unless an odd run of backslashes escapes it.
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return quote + 1;
    from = quote + 1;
  }
}

/** From the first character of a value to just past its last. */
function skipValue(text: string, at: number): number {
  const first = text.charCodeAt(at);
  if (first === QUOTE) return skipString(text, at);
  let i = at;
  if (first === OPEN_BRACE || first === OPEN_BRACKET) {
    let depth = 0;
    while (i < text.length) {
      const code = text.charCodeAt(i);
      if (code === QUOTE) {
        i = skipString(text, i);
        continue;
      }
      if (code === OPEN_BRACE || code === OPEN_BRACKET) depth++;
      else if ((code === CLOSE_BRACE || code === CLOSE_BRACKET) && --depth === 0) return i + 1;
      i++;
    }
    notJson();
  }
  // A number, true, false or null runs to the next delimiter.
  while (i < text.length) {
    const code = text.charCodeAt(i);
    if (code === COMMA || code === CLOSE_BRACE || code === CLOSE_BRACKET || isWhitespace(code)) break;
    i++;
  }
  return i;
}

function keyIs(text: string, start: number, end: number, name: string): boolean {
  const length = end - start - 2;
  if (length === name.length) return text.startsWith(name, start + 1);
  // A key spelled with escapes (`"d\u0061ta"`) is longer than the name; decode only such keys.
  if (length < name.length) return false;
  for (let i = start + 1; i < end - 1; i++) {
    if (text.charCodeAt(i) === BACKSLASH) return JSON.parse(text.slice(start, end)) === name;
  }
  return false;
}

/**
 * In the object whose `{` is at `at`: the span of the value of member `name` (the last one, as
 * JSON.parse keeps the last of duplicate keys) and the index just past the object.
 */
export function findMember(text: string, at: number, name: string): { span: Span | undefined; end: number } {
  let span: Span | undefined;
  let i = skipWhitespace(text, at + 1);
  if (text.charCodeAt(i) === CLOSE_BRACE) return { span, end: i + 1 };
  for (;;) {
    const keyEnd = skipString(text, i);
    const start = skipWhitespace(text, skipWhitespace(text, keyEnd) + 1); // past the colon
    const end = skipValue(text, start);
    if (keyIs(text, i, keyEnd, name)) span = { start, end };
    i = skipWhitespace(text, end);
    if (text.charCodeAt(i) === CLOSE_BRACE) return { span, end: i + 1 };
    if (i >= text.length) notJson();
    i = skipWhitespace(text, i + 1); // past the comma
  }
}

/** In the array whose `[` is at `at`: for each element, the span of its member `name`, if any. */
export function findMemberOfElements(text: string, at: number, name: string): (Span | undefined)[] {
  const spans: (Span | undefined)[] = [];
  let i = skipWhitespace(text, at + 1);
  if (text.charCodeAt(i) === CLOSE_BRACKET) return spans;
  for (;;) {
    if (text.charCodeAt(i) === OPEN_BRACE) {
      const found = findMember(text, i, name);
      spans.push(found.span);
      i = found.end;
    } else {
      spans.push(undefined);
      i = skipValue(text, i);
    }
    i = skipWhitespace(text, i);
    if (text.charCodeAt(i) === CLOSE_BRACKET) return spans;
    if (i >= text.length) notJson();
    i = skipWhitespace(text, i + 1); // past the comma
  }
}
