/**
 * The stored path against the object path: random events and random CESQL
 * expressions, each evaluated over the event as a plain object (as
 * decodeEventBatch gives it to a consumer) and over its stored block
 * (StoredAttributes, with the UTF-8 byte comparisons), must give the same
 * value and the same errors; a SubscriptionFilter over the block must keep
 * exactly the events whose objects match.
 */
import { describe, expect, it } from 'vitest';
import { StoredAttributes } from '../../src/broker/stored-attributes.js';
import { SubscriptionFilter } from '../../src/broker/subscription-filter.js';
import {
  CesqlError,
  compile,
  type CompiledExpression,
  type EvaluationResult,
} from '../../src/filters/cesql.js';
import {
  decodeEventBatch,
  encodeEventBatch,
  EventBlockReader,
  EventSlot,
  isKept,
  type EventFields,
  type ExtensionField,
} from '../../src/protocol/index.js';
import { tckEvent, tckSuites } from '../helpers/cesql-tck.js';
import { seededRandom } from '../helpers/random.js';

const encoder = new TextEncoder();

/** Characters for values and literals: ASCII, LIKE's and the lexer's own, 2-, 3- and 4-byte ones, BOM, U+FFFD, a lone surrogate. */
const characters = [
  'a',
  'b',
  'x',
  'A',
  '1',
  '%',
  '_',
  '\\',
  "'",
  '"',
  ' ',
  'é',
  '€',
  '😀',
  '\uFEFF',
  '\uFFFD',
  '\uD83D',
];

/** Byte runs a subject is overwritten with in the block, invalid UTF-8 and BOMs included. */
const byteRuns: readonly (readonly number[])[] = [
  ...['a', 'b', 'é', '€', '😀', '\uFEFF'].map((c) => [...encoder.encode(c)]),
  [0x80],
  [0xc3],
  [0xe2, 0x82],
  [0xf0, 0x9f, 0x98],
  [0xff],
];

const extensionNames = ['count', 'flag', 'link', 'payload', 'priority', 'region'] as const;
const contextNames = [
  'id',
  'source',
  'type',
  'specversion',
  'subject',
  'time',
  'datacontenttype',
  'dataschema',
] as const;
const attributeNames = [...contextNames, ...extensionNames, 'absent', 'data'] as const;

function generator(seed: number) {
  const random = seededRandom(seed);
  const below = (n: number) => Math.floor(random() * n);
  const pick = <T>(items: readonly T[]): T => items[below(items.length)] as T;
  const chance = (p: number) => random() < p;
  const text = (max: number) => Array.from({ length: below(max + 1) }, () => pick(characters)).join('');
  /** Short values so that literals and values meet often. */
  const value = () => pick(['a', 'ab', 'x', '1', '7', '-3', 'true', 'FALSE', 'é€', '😀', '', text(3)]);

  function extension(name: string): ExtensionField {
    switch (below(6)) {
      case 0:
        return { name, kind: 'integer', value: pick([0, 1, 7, -3, 2147483647]) };
      case 1:
        return { name, kind: 'boolean', value: chance(0.5) };
      case 2:
        return { name, kind: 'binary', value: new Uint8Array([1, 2]) };
      case 3:
        return { name, kind: 'uri', value: `https://e.example/${value()}` };
      default:
        return { name, kind: 'string', value: value() };
    }
  }

  function event(i: number): EventFields {
    const extensions = extensionNames.filter(() => chance(0.5)).map(extension);
    const json = chance(0.5);
    return {
      id: `e${i}${value()}`,
      // Few sources and types, so that the writer shares them between neighbours.
      source: pick(['/a', '/b', 'https://é.example/😀']),
      type: pick(['x', 'com.example.a', value()]),
      ...(chance(0.8) ? { specversion: '1.0' } : {}),
      ...(chance(0.8) ? { subject: chance(0.3) ? 'r'.repeat(below(6)) : value() } : {}),
      ...(chance(0.5) ? { time: '2026-01-02T03:04:05Z' } : {}),
      ...(chance(0.5) ? { datacontenttype: json ? 'application/json' : 'text/plain' } : {}),
      ...(chance(0.2) ? { dataschema: value() } : {}),
      ...(extensions.length > 0 ? { extensions } : {}),
      ...(chance(0.7)
        ? { data: encoder.encode(json ? JSON.stringify({ a: value(), n: below(10) }) : value()) }
        : {}),
    };
  }

  /** A block of events; subjects of `r`s are overwritten in place with random bytes, valid UTF-8 or not. */
  function block(count: number): Uint8Array {
    const bytes = encodeEventBatch(Array.from({ length: count }, (_, i) => event(i)));
    const reader = new EventBlockReader();
    reader.reset(bytes);
    for (let i = 0; i < count; i++) {
      reader.selectEvent(i);
      if (!reader.eventRange(EventSlot.subject) || bytes[reader.start] !== 0x72) continue;
      const runs: number[] = [];
      while (runs.length < reader.end - reader.start) runs.push(...pick(byteRuns));
      bytes.set(runs.slice(0, reader.end - reader.start), reader.start);
    }
    return bytes;
  }

  /** A CESQL string literal, quoted either way, with the lexer's escapes. */
  function literal(content: string): string {
    const quote = chance(0.5) ? "'" : '"';
    // A backslash before the closing quote would escape it.
    const safe = content.replace(/\\$/, '');
    return quote + safe.replaceAll(quote, chance(0.5) ? quote + quote : `\\${quote}`) + quote;
  }

  const name = () => {
    const chosen: string = chance(0.1) ? pick(['data.a', 'data.n', 'DATA.a']) : pick(attributeNames);
    return chance(0.2) ? chosen.toUpperCase().replace('DATA.A', 'data.a') : chosen;
  };
  const anyLiteral = () => pick([literal(value()), literal(text(3)), String(below(9) - 2), 'TRUE', 'false']);
  const pattern = () =>
    literal(
      pick([`${value()}%`, `%${value()}`, `%${value()}%`, value(), `${value()}%${value()}`, text(4), '%']),
    );

  function condition(depth: number): string {
    const operand = chance(0.2) ? `${pick(['LOWER', 'UPPER', 'STRING', 'TRIM'])}(${name()})` : name();
    switch (below(depth > 0 ? 9 : 6)) {
      case 0:
        return `${operand} ${pick(['=', '<>', '!='])} ${anyLiteral()}`;
      case 1:
        return `${anyLiteral()} ${pick(['=', '!='])} ${operand}`;
      case 2:
        return `${operand} ${pick(['LIKE', 'NOT LIKE'])} ${pattern()}`;
      case 3:
        return `${operand} ${pick(['IN', 'NOT IN'])} (${Array.from({ length: 1 + below(3) }, anyLiteral).join(', ')})`;
      case 4:
        return chance(0.5)
          ? `EXISTS ${name()}`
          : `${pick(['INT', 'LENGTH'])}(${name()}) ${pick(['<', '>=', '='])} ${below(9)}`;
      case 5:
        return chance(0.5) ? name() : `${operand} = ${name()}`;
      case 6:
        return `NOT (${condition(depth - 1)})`;
      default:
        return `(${condition(depth - 1)}) ${pick(['AND', 'OR', 'XOR'])} (${condition(depth - 1)})`;
    }
  }

  return { block, expression: () => condition(2) };
}

/** The event as the object path sees it; binary extensions left out, as CESQL has no binary type. */
function plainObject(event: EventFields): Record<string, unknown> {
  const { extensions, ...attributes } = event;
  const object: Record<string, unknown> = { ...attributes };
  for (const extension of extensions ?? [])
    if (extension.kind !== 'binary') object[extension.name] = extension.value;
  return object;
}

const contextAttributes = new Set<string>(contextNames);

/**
 * A TCK event as the broker stores it: context attributes as strings,
 * extensions as String, Integer or Boolean; `undefined` when it has no stored
 * form (a required attribute missing, a context attribute that is no string).
 */
function tckFields(event: Record<string, unknown>): EventFields | undefined {
  const fields: Record<string, unknown> = {};
  const extensions: ExtensionField[] = [];
  for (const [name, value] of Object.entries(event)) {
    if (contextAttributes.has(name)) {
      if (typeof value !== 'string') return undefined;
      fields[name] = value;
    } else if (typeof value === 'string') extensions.push({ name, kind: 'string', value });
    else if (typeof value === 'boolean') extensions.push({ name, kind: 'boolean', value });
    else if (typeof value === 'number' && (value | 0) === value)
      extensions.push({ name, kind: 'integer', value });
    else return undefined;
  }
  if (!['id', 'source', 'type'].every((name) => typeof fields[name] === 'string')) return undefined;
  extensions.sort((a, b) => (a.name < b.name ? -1 : 1));
  return { ...(fields as unknown as EventFields), ...(extensions.length > 0 ? { extensions } : {}) };
}

const outcome = ({ value, errors }: EvaluationResult) => ({
  value,
  errors: errors.map((error) => error.message),
});

describe('broker > stored attributes', () => {
  it('evaluates random expressions over stored events as over the same events as objects', () => {
    const { block, expression } = generator(2026);
    let evaluations = 0;
    let matches = 0;
    for (let round = 0; round < 60; round++) {
      const bytes = block(48);
      const objects = decodeEventBatch(bytes).map(plainObject);
      const stored = new StoredAttributes(['data.a', 'data.n']);
      const reader = new EventBlockReader();
      for (let n = 0; n < 25; n++) {
        const text = expression();
        let compiled: CompiledExpression;
        try {
          compiled = compile(text);
        } catch (error) {
          if (error instanceof CesqlError) continue;
          throw error;
        }
        reader.reset(bytes);
        stored.forget();
        for (let i = 0; i < objects.length; i++) {
          reader.selectEvent(i);
          const expected = outcome(compiled.evaluate(objects[i]!));
          expect(outcome(compiled.evaluateWith(reader, stored.read)), `${text} over event ${i}`).toEqual(
            expected,
          );
          evaluations++;
          if (expected.value === true && expected.errors.length === 0) matches++;
        }
        if (compiled.resultType === 'Integer' || compiled.resultType === 'String') continue;
        const kept = SubscriptionFilter.parse(JSON.stringify({ sql: text })).keepEvents(bytes);
        const expected = objects.map((object) => compiled.matches(object));
        const actual = objects.map((_, i) =>
          kept === null ? true : kept === 'none' ? false : isKept(kept, i),
        );
        expect(actual, text).toEqual(expected);
      }
    }
    // The generator must exercise both verdicts, not pass by never matching.
    expect(evaluations).toBeGreaterThan(40_000);
    expect(matches).toBeGreaterThan(evaluations / 20);
  });

  it('passes the CESQL TCK over stored events', () => {
    const stored = new StoredAttributes();
    const reader = new EventBlockReader();
    let cases = 0;
    for (const { tests } of tckSuites()) {
      for (const test of tests) {
        const fields = tckFields(tckEvent(test));
        let compiled: CompiledExpression;
        try {
          compiled = compile(test.expression);
        } catch (error) {
          if (error instanceof CesqlError) continue; // compile errors do not depend on the events
          throw error;
        }
        if (fields === undefined) continue;
        reader.reset(encodeEventBatch([fields]));
        reader.selectEvent(0);
        stored.forget();
        const { value, errors } = compiled.evaluateWith(reader, stored.read);
        if (test.result !== undefined) expect(value, test.name).toBe(test.result);
        expect(
          errors.map((error) => error.kind),
          test.name,
        ).toEqual(test.error === undefined ? [] : [test.error]);
        cases++;
      }
    }
    expect(cases).toBeGreaterThan(200);
  });

  it('reads a string the writer shares between events once per run of them, and again in the next block', () => {
    const events = (type: string): EventFields[] =>
      Array.from({ length: 4 }, (_, i) => ({ id: `${i}`, source: '/s', type }));
    const stored = new StoredAttributes();
    const reader = new EventBlockReader();
    const types = (bytes: Uint8Array) => {
      stored.forget();
      reader.reset(bytes);
      return Array.from({ length: 4 }, (_, i) => {
        reader.selectEvent(i);
        return stored.read(reader, 'type');
      });
    };
    const first = types(encodeEventBatch(events('a')));
    expect(first).toEqual(['a', 'a', 'a', 'a']);
    // The same offsets in another block hold another string.
    expect(types(encodeEventBatch(events('b')))).toEqual(['b', 'b', 'b', 'b']);
  });
});
