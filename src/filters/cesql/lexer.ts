/**
 * CESQL tokens (spec §2, and the reference ANTLR lexer where the EBNF is silent):
 *
 *   word      [A-Za-z0-9_]+ that is not all digits: keyword, attribute or function name
 *   path      `data` (any case) directly followed by one or more `.segment`, each
 *             [A-Za-z0-9_]+, without spaces: Eddy's data path (see data.ts); the
 *             token's value is `data.` and the segments as written
 *   integer   [0-9]+ (a sign is the parser's business, so that `4-1` means 4 minus 1)
 *   string    '…' or "…"; inside, `\` followed by the delimiter, or the delimiter
 *             doubled, stands for the delimiter; any other `\` is kept as it is,
 *             because LIKE gives `\%` and `\_` their meaning later
 *   operator  ( ) , + - * / % = != <> < <= > >=
 *
 * Space, tab, CR and LF separate tokens. Words are classified by the parser,
 * since whether `abc` is an attribute or a function depends on a following `(`.
 */
import { CesqlParseError } from './errors.js';
import type { SourceText } from './source.js';

/** `end` is the parser's: it stands for every read past the last token. */
export type TokenKind = 'word' | 'integer' | 'string' | 'path' | 'operator' | 'end';

export interface Token {
  readonly kind: TokenKind;
  /** The token as written (for strings: with quotes and escapes). */
  readonly text: string;
  /** The string literal's value; the same as `text` for other kinds. */
  readonly value: string;
  readonly offset: number;
}

const operators = ['!=', '<>', '<=', '>=', '(', ')', ',', '+', '-', '*', '/', '%', '=', '<', '>'] as const;

function isWordChar(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f // _
  );
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

export function tokenize(source: SourceText): Token[] {
  const text = source.text;
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (isSpace(c)) {
      i++;
    } else if (isWordChar(c)) {
      const start = i;
      while (i < text.length && isWordChar(text.charCodeAt(i))) i++;
      const word = text.slice(start, i);
      if (text.charCodeAt(i) === 0x2e && word.toLowerCase() === 'data') {
        const path = readDataPath(source, start, i);
        tokens.push(path);
        i = start + path.text.length;
      } else {
        const kind = /^[0-9]+$/.test(word) ? 'integer' : 'word';
        tokens.push({ kind, text: word, value: word, offset: start });
      }
    } else if (c === 0x27 || c === 0x22) {
      const token = readString(source, i);
      tokens.push(token);
      i += token.text.length;
    } else {
      const operator = operators.find((candidate) => text.startsWith(candidate, i));
      if (operator === undefined) {
        const character = String.fromCodePoint(text.codePointAt(i) ?? c);
        throw new CesqlParseError(
          `unexpected character ${JSON.stringify(character)}`,
          source.span(i, character.length),
        );
      }
      tokens.push({ kind: 'operator', text: operator, value: operator, offset: i });
      i += operator.length;
    }
  }
  return tokens;
}

/** A data path starting at `start`, where `dot` is the first `.` (after the word `data`). */
function readDataPath(source: SourceText, start: number, dot: number): Token {
  const text = source.text;
  let i = dot;
  while (text.charCodeAt(i) === 0x2e) {
    const segment = ++i;
    while (i < text.length && isWordChar(text.charCodeAt(i))) i++;
    if (i === segment) {
      const found = i < text.length ? String.fromCodePoint(text.codePointAt(i) ?? 0) : '';
      const what = found === '' ? 'the end of the expression' : JSON.stringify(found);
      throw new CesqlParseError(
        `expected a data path segment (letters, digits and _) after '.' but found ${what}`,
        source.span(i, found.length),
      );
    }
  }
  return { kind: 'path', text: text.slice(start, i), value: `data${text.slice(dot, i)}`, offset: start };
}

function readString(source: SourceText, start: number): Token {
  const text = source.text;
  const quote = text.charAt(start);
  let value = '';
  let i = start + 1;
  while (i < text.length) {
    const c = text.charAt(i);
    if (c === '\\' && i + 1 < text.length) {
      const next = text.charAt(i + 1);
      value += next === quote ? quote : c + next;
      i += 2;
    } else if (c === quote) {
      if (text.charAt(i + 1) !== quote) {
        return { kind: 'string', text: text.slice(start, i + 1), value, offset: start };
      }
      value += quote;
      i += 2;
    } else {
      value += c;
      i++;
    }
  }
  throw new CesqlParseError('unterminated string literal', source.span(start, text.length - start));
}
