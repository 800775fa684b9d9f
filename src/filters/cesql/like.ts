/**
 * LIKE patterns (spec §3.4.3): `%` matches any run of characters, `_` exactly
 * one character (a Unicode code point, not a UTF-16 unit), `\%` and `\_` the
 * characters themselves; any other character, a lone `\` included, matches
 * itself, case-sensitively.
 *
 * The pattern is compiled once into a matcher. Patterns that are literal
 * between their `%`s — nearly all of them in practice — become one call to
 * `===`, `startsWith`, `endsWith` or `includes`. The rest use a segment
 * matcher instead of a regular expression: the pieces between `%`s have a
 * fixed length, so taking the leftmost match of each is always right, and the
 * cost stays O(text × pattern) whatever the pattern — a backtracking regex
 * would let a subscriber's pattern stall the partition worker.
 */
import { widthAt, widthBefore } from './text.js';

export type LikeMatcher = (text: string) => boolean;

/** A piece of a segment: literal text, or a run of that many `_`. */
type Item = string | number;
type Segment = readonly Item[];

/**
 * A pattern that is literal between its `%`s in one of the shapes a plain
 * string test answers: the whole text (`abc`), a prefix and a suffix either of
 * which may be empty (`abc%`, `%abc`, `ab%c`, `%`), or one infix (`%abc%`).
 * Shared by the string matcher below and the UTF-8 byte matcher (utf8.ts),
 * so that both recognise the same patterns.
 */
export type LiteralPattern =
  | { readonly kind: 'exact'; readonly text: string }
  | { readonly kind: 'ends'; readonly prefix: string; readonly suffix: string }
  | { readonly kind: 'infix'; readonly text: string };

/** The pattern's literal shape, or `undefined` when it has a `_` or more than one piece between `%`s. */
export function literalPattern(pattern: string): LiteralPattern | undefined {
  const segments = parsePattern(pattern);
  const head = segments[0] ?? [];
  const prefix = literalOf(head);
  if (segments.length === 1) return prefix === undefined ? undefined : { kind: 'exact', text: prefix };
  const suffix = literalOf(segments[segments.length - 1] ?? []);
  if (prefix === undefined || suffix === undefined) return undefined;
  const middles = segments.slice(1, -1).filter((segment) => segment.length > 0);
  if (middles.length === 0) return { kind: 'ends', prefix, suffix };
  const infix = middles.length === 1 ? literalOf(middles[0] ?? []) : undefined;
  return infix !== undefined && prefix === '' && suffix === '' ? { kind: 'infix', text: infix } : undefined;
}

export function compileLike(pattern: string): LikeMatcher {
  const literal = literalPattern(pattern);
  if (literal !== undefined) return literalMatcher(literal);
  const segments = parsePattern(pattern);
  const head = segments[0] ?? [];
  if (segments.length === 1) return (text) => matchForward(text, 0, head) === text.length;
  const tail = segments[segments.length - 1] ?? [];
  const middles = segments.slice(1, -1).filter((segment) => segment.length > 0);
  return (text) => matchSegments(text, head, middles, tail);
}

/** The fast paths: one call to `===`, `startsWith`, `endsWith` or `includes`. */
function literalMatcher(literal: LiteralPattern): LikeMatcher {
  switch (literal.kind) {
    case 'exact': {
      const exact = literal.text;
      return (text) => text === exact;
    }
    case 'infix': {
      const infix = literal.text;
      return (text) => text.includes(infix);
    }
    case 'ends': {
      const { prefix, suffix } = literal;
      if (prefix === '' && suffix === '') return () => true;
      if (suffix === '') return (text) => text.startsWith(prefix);
      if (prefix === '') return (text) => text.endsWith(suffix);
      const shortest = prefix.length + suffix.length;
      return (text) => text.length >= shortest && text.startsWith(prefix) && text.endsWith(suffix);
    }
  }
}

function parsePattern(pattern: string): Segment[] {
  let current: Item[] = [];
  const segments: Item[][] = [current];
  for (let i = 0; i < pattern.length; i++) {
    let c = pattern.charAt(i);
    const next = pattern.charAt(i + 1);
    if (c === '%') {
      current = [];
      segments.push(current);
      continue;
    }
    const last = current[current.length - 1];
    if (c === '_') {
      if (typeof last === 'number') current[current.length - 1] = last + 1;
      else current.push(1);
      continue;
    }
    if (c === '\\' && (next === '%' || next === '_')) {
      c = next;
      i++;
    }
    if (typeof last === 'string') current[current.length - 1] = last + c;
    else current.push(c);
  }
  return segments;
}

function literalOf(segment: Segment): string | undefined {
  if (segment.length === 0) return '';
  const only = segment[0];
  return segment.length === 1 && typeof only === 'string' ? only : undefined;
}

function matchSegments(text: string, head: Segment, middles: readonly Segment[], tail: Segment): boolean {
  let at = matchForward(text, 0, head);
  if (at < 0) return false;
  const limit = matchBackward(text, text.length, tail);
  if (limit < at) return false;
  for (const segment of middles) {
    at = findLeftmost(text, at, limit, segment);
    if (at < 0) return false;
  }
  return true;
}

/** Where `segment` ends when matched from `start`, or -1. */
function matchForward(text: string, start: number, segment: Segment): number {
  let at = start;
  for (const item of segment) {
    if (typeof item === 'string') {
      if (!text.startsWith(item, at)) return -1;
      at += item.length;
      continue;
    }
    for (let n = 0; n < item; n++) {
      if (at >= text.length) return -1;
      at += widthAt(text, at);
    }
  }
  return at;
}

/** Where `segment` starts when matched so that it ends at `end`, or -1. */
function matchBackward(text: string, end: number, segment: Segment): number {
  let at = end;
  for (let i = segment.length - 1; i >= 0; i--) {
    const item = segment[i] ?? '';
    if (typeof item === 'string') {
      at -= item.length;
      if (at < 0 || !text.startsWith(item, at)) return -1;
      continue;
    }
    for (let n = 0; n < item; n++) {
      if (at <= 0) return -1;
      at -= widthBefore(text, at);
    }
  }
  return at;
}

/** The end of the leftmost match of `segment` starting at or after `from` and ending by `limit`, or -1. */
function findLeftmost(text: string, from: number, limit: number, segment: Segment): number {
  const first = segment[0];
  for (let start = from; start <= limit; start += widthAt(text, start)) {
    if (typeof first === 'string') {
      start = text.indexOf(first, start);
      if (start < 0 || start > limit) return -1;
    }
    const end = matchForward(text, start, segment);
    // A later start never ends earlier, so a match past the limit ends the search.
    if (end >= 0) return end <= limit ? end : -1;
    if (start >= text.length) return -1;
  }
  return -1;
}
