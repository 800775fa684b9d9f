import { describe, expect, it } from 'vitest';
import { CesqlParseError, type AttributeReader } from '../../src/filters/cesql.js';
import {
  compileFilter,
  compileFilters,
  InvalidFilterError,
  maxFilterDepth,
  type InvalidFilterReason,
} from '../../src/filters/dialects.js';

const event = {
  specversion: '1.0',
  id: 'e-1',
  source: 'https://github.com/cloudevents/spec',
  type: 'com.github.push',
  subject: 'refs/heads/main',
  attempt: 3,
  urgent: true,
};

function invalid(filter: unknown, compileWith = compileFilter): InvalidFilterError {
  try {
    compileWith(filter);
  } catch (error) {
    if (error instanceof InvalidFilterError) return error;
    throw error;
  }
  throw new Error(`${JSON.stringify(filter)} compiled`);
}

describe('filters > dialects > matching', () => {
  it('matches exact, prefix and suffix case-sensitively on every named attribute', () => {
    expect(compileFilter({ exact: { type: 'com.github.push', id: 'e-1' } }).matches(event)).toBe(true);
    expect(compileFilter({ exact: { type: 'com.github.PUSH' } }).matches(event)).toBe(false);
    expect(compileFilter({ prefix: { type: 'com.github.', source: 'https://' } }).matches(event)).toBe(true);
    expect(compileFilter({ prefix: { type: 'com.github.', source: 'http://' } }).matches(event)).toBe(false);
    expect(compileFilter({ suffix: { subject: '/main' } }).matches(event)).toBe(true);
    expect(compileFilter({ suffix: { subject: '/Main' } }).matches(event)).toBe(false);
  });

  it('never matches an attribute the event lacks', () => {
    expect(compileFilter({ exact: { region: 'eu' } }).matches(event)).toBe(false);
    expect(compileFilter({ not: { exact: { region: 'eu' } } }).matches(event)).toBe(true);
    expect(compileFilter({ prefix: { constructor: 'f' } }).matches(event)).toBe(false);
  });

  it('compares non-string extension values by their CESQL String form', () => {
    expect(compileFilter({ exact: { attempt: '3', urgent: 'true' } }).matches(event)).toBe(true);
    expect(compileFilter({ exact: { attempt: '03' } }).matches(event)).toBe(false);
  });

  it('composes all, any and not', () => {
    const filter = compileFilter({
      all: [
        { any: [{ exact: { type: 'com.github.pull' } }, { prefix: { type: 'com.github.' } }] },
        { not: { suffix: { subject: '/dev' } } },
      ],
    });
    expect(filter.matches(event)).toBe(true);
    expect(filter.matches({ ...event, subject: 'refs/heads/dev' })).toBe(false);
    expect(filter.matches({ ...event, type: 'org.gitlab.push' })).toBe(false);
  });

  it('matches sql only when the expression gives Boolean true without an error', () => {
    expect(compileFilter({ sql: "source LIKE '%cloudevents%'" }).matches(event)).toBe(true);
    expect(compileFilter({ sql: 'urgent' }).matches(event)).toBe(true);
    expect(compileFilter({ sql: 'subject' }).matches(event)).toBe(false);
    expect(compileFilter({ sql: 'attempt / 0 = 0' }).matches(event)).toBe(false);
    expect(compileFilter({ not: { sql: "region = 'eu'" } }).matches(event)).toBe(true);
  });

  it('requires every filter of a subscription, and matches everything with none', () => {
    expect(compileFilters([]).matches(event)).toBe(true);
    expect(compileFilters([{ exact: { id: 'e-1' } }, { sql: 'attempt > 2' }]).matches(event)).toBe(true);
    expect(compileFilters([{ exact: { id: 'e-1' } }, { sql: 'attempt > 3' }]).matches(event)).toBe(false);
  });

  it('lists the attributes its filters read', () => {
    const filter = compileFilters([
      { all: [{ exact: { type: 'a' } }, { sql: 'EXISTS region OR INT(hop) > 1' }] },
      { not: { prefix: { type: 'b', subject: 'c' } } },
    ]);
    expect(filter.attributes).toEqual(['type', 'region', 'hop', 'subject']);
  });

  it('runs over any source through an attribute reader, and fails closed when the reader throws', () => {
    const read: AttributeReader<Map<string, unknown>> = (source, name) => source.get(name);
    const filter = compileFilter({ all: [{ exact: { type: 't' } }, { sql: "subject LIKE 'a%'" }] });
    expect(
      filter.matchesWith(
        new Map([
          ['type', 't'],
          ['subject', 'abc'],
        ]),
        read,
      ),
    ).toBe(true);
    const broken: AttributeReader<null> = () => {
      throw new Error('corrupt frame');
    };
    expect(compileFilter({ exact: { type: 't' } }).matchesWith(null, broken)).toBe(false);
    expect(compileFilter({ not: { exact: { type: 't' } } }).matchesWith(null, broken)).toBe(true);
  });
});

describe('filters > dialects > validation', () => {
  it.each<[string, unknown, InvalidFilterReason, string]>([
    ['a filter that is not an object', 'type = x', 'notAnObject', ''],
    ['an array as a filter', [], 'notAnObject', ''],
    ['no dialect key', {}, 'dialectCount', ''],
    ['two dialect keys', { exact: { type: 'a' }, prefix: { type: 'b' } }, 'dialectCount', ''],
    ['an unknown dialect', { regex: { type: '.*' } }, 'unknownDialect', '/regex'],
    ['exact without an object', { exact: 'type' }, 'invalidValue', '/exact'],
    ['exact naming no attribute', { exact: {} }, 'noAttributes', '/exact'],
    ['an upper-case attribute name', { prefix: { Type: 'a' } }, 'invalidAttributeName', '/prefix/Type'],
    ['an empty attribute name', { suffix: { '': 'a' } }, 'invalidAttributeName', '/suffix/'],
    ['a non-string value', { exact: { attempt: 3 } }, 'invalidValue', '/exact/attempt'],
    ['an empty value', { exact: { type: '' } }, 'emptyValue', '/exact/type'],
    ['all without an array', { all: { exact: { type: 'a' } } }, 'invalidValue', '/all'],
    ['an empty any', { any: [] }, 'emptyList', '/any'],
    [
      'a bad filter deep inside',
      { all: [{ exact: { type: 'a' } }, { not: { exact: { type: '' } } }] },
      'emptyValue',
      '/all/1/not/exact/type',
    ],
    ['sql without a string', { sql: ['type = x'] }, 'invalidValue', '/sql'],
    ['sql that is not CESQL', { sql: "type = 'a" }, 'invalidExpression', '/sql'],
    ['sql calling no known function', { sql: 'NOPE(type)' }, 'invalidExpression', '/sql'],
    ['sql that can never give a Boolean', { sql: "CONCAT(type, 'x')" }, 'notBoolean', '/sql'],
    ['a key with / and ~', { exact: { 'a/b~': 'x' } }, 'invalidAttributeName', '/exact/a~1b~0'],
  ])('rejects %s', (_name, filter, reason, path) => {
    const error = invalid(filter);
    expect(error.reason).toBe(reason);
    expect(error.path).toBe(path);
  });

  it('keeps the CESQL error and its position as the cause of an invalid expression', () => {
    const error = invalid({ any: [{ sql: "type = 'a' AND" }] });
    expect(error.cause).toBeInstanceOf(CesqlParseError);
    expect(error.cause?.span.column).toBe(15);
    expect(error.message).toBe(
      'invalid filter at /any/0/sql: expected an expression but found the end of the expression (line 1, column 15)',
    );
  });

  it(`refuses nesting deeper than ${maxFilterDepth} levels`, () => {
    let filter: unknown = { exact: { type: 'a' } };
    for (let i = 0; i <= maxFilterDepth; i++) filter = { not: filter };
    expect(invalid(filter).reason).toBe('tooDeep');
  });

  it('rejects subscription filters that are not an array, naming the index of a bad one', () => {
    expect(invalid({ exact: { type: 'a' } }, compileFilters).reason).toBe('invalidValue');
    expect(invalid([{ exact: { type: 'a' } }, { sql: 1 }], compileFilters).path).toBe('/1/sql');
  });
});
