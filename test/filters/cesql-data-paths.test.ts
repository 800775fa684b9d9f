import { afterEach, describe, expect, it, vi } from 'vitest';
import { SubscriptionFilter } from '../../src/broker/index.js';
import {
  CesqlError,
  CesqlMissingAttributeError,
  CesqlParseError,
  compile,
  isJsonContentType,
} from '../../src/filters/cesql.js';
import { compileFilter } from '../../src/filters/dialects.js';
import { encodeEventBatch, type EventFields } from '../../src/protocol/index.js';

const attributes = { specversion: '1.0', id: 'e-1', source: '/shop', type: 'order' };

const order = {
  id: 'o-7',
  Tier: 'gold',
  vip: true,
  total: 250,
  ratio: 1.5,
  big: 2147483648,
  small: -2147483648,
  huge: 1e21,
  note: null,
  customer: { id: 'c-1', address: { city: 'Lyon' } },
  items: [{ sku: 'A-1', qty: 2 }, { sku: 'B-2' }],
  matrix: [
    [1, 2],
    [3, 4],
  ],
  byIndex: { '0': 'zero' },
};

function evaluate(expression: string, data: unknown = order, datacontenttype?: string) {
  const event = { ...attributes, data, ...(datacontenttype === undefined ? {} : { datacontenttype }) };
  return compile(expression).evaluate(event);
}

function valueOf(expression: string, data: unknown = order, datacontenttype?: string) {
  return evaluate(expression, data, datacontenttype).value;
}

/** The value and the error classes of reading `path` alone. */
function read(path: string, data: unknown = order, datacontenttype?: string) {
  const { value, errors } = evaluate(path, data, datacontenttype);
  return { value, errors: errors.map((error) => error.constructor) };
}

const missing = { value: false, errors: [CesqlMissingAttributeError] };

function compileError(expression: string): CesqlError {
  try {
    compile(expression);
  } catch (error) {
    if (error instanceof CesqlError) return error;
    throw error;
  }
  throw new Error(`${expression} compiled`);
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('filters > cesql > data paths > parse', () => {
  it('reads data.<path> as one attribute name, its segments as written', () => {
    expect(compile("data.customer.id = 'c-1'").attributes).toEqual(['data.customer.id']);
    expect(compile('data.items.0.sku').attributes).toEqual(['data.items.0.sku']);
    expect(compile('DATA.Tier').attributes).toEqual(['data.Tier']);
    expect(compile('data.a_b.C9 AND type = data.x').attributes).toEqual(['data.a_b.C9', 'type', 'data.x']);
    expect(compile('EXISTS data.customer.id').attributes).toEqual(['data.customer.id']);
  });

  it('keeps bare data unreadable', () => {
    expect(compile('data').attributes).toEqual(['data']);
    expect(read('data', '{"a":1}')).toEqual(missing);
    expect(valueOf('EXISTS data')).toBe(false);
  });

  it('refuses a path that ends at a dot, at the end of the expression', () => {
    const error = compileError('data.');
    expect(error).toBeInstanceOf(CesqlParseError);
    expect(error.reason).toBe(
      "expected a data path segment (letters, digits and _) after '.' but found the end of the expression",
    );
    expect(error.span).toMatchObject({ offset: 5, length: 0, line: 1, column: 6 });
    expect(compileError("data.items. = 'x'").span).toMatchObject({ offset: 11, length: 1 });
  });

  it('refuses an empty segment at the second dot', () => {
    const error = compileError('data..x = 1');
    expect(error.reason).toBe(`expected a data path segment (letters, digits and _) after '.' but found "."`);
    expect(error.span).toMatchObject({ offset: 5, length: 1, column: 6 });
  });

  it('refuses white space inside the path where it stands', () => {
    expect(compileError('data. x').span).toMatchObject({ offset: 5, length: 1 });
    expect(compileError('data.a .b').reason).toBe('unexpected character "."');
    expect(compileError('data.a .b').span.offset).toBe(7);
    // A space before the first dot leaves `data` a word, and the dot no part of CESQL, as before.
    expect(compileError('data .x').reason).toBe('unexpected character "."');
    expect(compileError('data .x').span.offset).toBe(5);
  });

  it('points at a character that cannot be in a segment, on its line', () => {
    const error = compileError("type = 'order'\n  AND data.é = 1");
    expect(error.span).toMatchObject({ line: 2, column: 12, length: 1 });
    expect(compileError('data.😀').span).toMatchObject({ offset: 5, length: 2 });
  });

  it('leaves everything else as it lexed before', () => {
    expect(compileError('mydata.x').reason).toBe('unexpected character "."');
    expect(compileError('1.5').reason).toBe('unexpected character "."');
    expect(valueOf("'data.x'")).toBe('data.x');
    expect(compileError('data.x(1)').reason).toContain(
      "expected an operator or the end of the expression but found '('",
    );
    expect(compileError('data.x LIKE data.y').reason).toBe(
      "expected a string literal after LIKE but found 'data.y'",
    );
    // Segments are words: `-` after one is subtraction.
    expect(valueOf('data.total-50')).toBe(200);
  });
});

describe('filters > cesql > data paths > values', () => {
  it('reads a JSON string as a String, a boolean as a Boolean, a 32-bit integer as an Integer', () => {
    expect(read('data.id')).toEqual({ value: 'o-7', errors: [] });
    expect(read('data.vip')).toEqual({ value: true, errors: [] });
    expect(read('data.total')).toEqual({ value: 250, errors: [] });
    expect(read('data.small')).toEqual({ value: -2147483648, errors: [] });
    expect(valueOf("data.total = 250 AND data.vip AND data.id = 'o-7'")).toBe(true);
  });

  it('reads any other number as its JSON text, a String', () => {
    expect(read('data.ratio')).toEqual({ value: '1.5', errors: [] });
    expect(read('data.big')).toEqual({ value: '2147483648', errors: [] });
    expect(read('data.huge')).toEqual({ value: '1e+21', errors: [] });
    expect(valueOf('data.x', '{"x": -0.25}')).toBe('-0.25');
    // JSON does not tell 1.0 from 1: both are the Integer 1.
    expect(read('data.x', '{"x": 1.0}')).toEqual({ value: 1, errors: [] });
  });

  it('walks nested objects and indexes arrays with a digits-only segment', () => {
    expect(valueOf('data.customer.address.city')).toBe('Lyon');
    expect(valueOf('data.items.0.sku')).toBe('A-1');
    expect(valueOf('data.items.1.sku')).toBe('B-2');
    expect(valueOf('data.items.0.qty * 10')).toBe(20);
    expect(valueOf('data.matrix.1.0')).toBe(3);
    expect(valueOf('data.x.1', '{"x": ["a", "b"]}')).toBe('b');
  });

  it('reads a digits-only segment over an object as the key', () => {
    expect(valueOf('data.byIndex.0')).toBe('zero');
  });

  it('is case-sensitive in the path, not in the data prefix', () => {
    expect(valueOf('data.Tier')).toBe('gold');
    expect(valueOf('DaTa.Tier')).toBe('gold');
    expect(read('data.tier')).toEqual(missing);
  });

  it('reads null, an object, an array or an absent key as a missing attribute', () => {
    for (const path of ['data.note', 'data.customer', 'data.items', 'data.nothing', 'data.customer.name'])
      expect(read(path), path).toEqual(missing);
    const { errors } = evaluate('data.customer.name');
    expect(errors[0]).toBeInstanceOf(CesqlMissingAttributeError);
    expect(errors[0]?.message).toBe('missing attribute: "data.customer.name" (line 1, column 1)');
    expect(errors[0]?.span).toMatchObject({ offset: 0, length: 'data.customer.name'.length });
  });

  it('reads an index that is out of range, not canonical, or not an index as missing', () => {
    for (const path of ['data.items.2.sku', 'data.items.00.sku', 'data.items.01', 'data.items.length'])
      expect(read(path), path).toEqual(missing);
  });

  it('walks through scalars to nothing', () => {
    expect(read('data.id.length')).toEqual(missing);
    expect(read('data.total.x')).toEqual(missing);
  });

  it('never reads inherited members', () => {
    expect(read('data.constructor')).toEqual(missing);
    expect(read('data.customer.toString')).toEqual(missing);
    expect(read('data.__proto__')).toEqual(missing);
    // JSON text may have a member called __proto__; it is an own member like any other.
    expect(valueOf('data.__proto__', '{"__proto__": "own"}')).toBe('own');
  });

  it('makes an operation over a missing path return its zero value, as an absent extension does', () => {
    expect(evaluate('data.nothing = 1')).toMatchObject({ value: false });
    expect(evaluate('data.nothing + 1').value).toBe(0);
    expect(compile('data.nothing = 1 OR type = "order"').matches({ ...attributes, data: order })).toBe(false);
  });

  it('answers EXISTS true for a value and false, without an error, otherwise', () => {
    expect(evaluate('EXISTS data.customer.id')).toEqual({ value: true, errors: [] });
    expect(evaluate('EXISTS data.vip AND EXISTS data.ratio').value).toBe(true);
    for (const path of ['data.note', 'data.customer', 'data.nothing', 'data.items.5'])
      expect(evaluate(`EXISTS ${path}`), path).toEqual({ value: false, errors: [] });
    expect(evaluate('EXISTS data.a', '{"a": 1}', 'text/plain')).toEqual({ value: false, errors: [] });
  });
});

describe('filters > cesql > data paths > content type and form of the data', () => {
  const text = JSON.stringify(order);

  it('reads data whose content type is absent, application/json or a +json type', () => {
    for (const type of [
      undefined,
      'application/json',
      'Application/JSON',
      'application/json; charset=utf-8',
      ' application/json ;charset=UTF-8',
      'application/cloudevents+json',
      'application/vnd.acme.order.v2+json; profile="x"',
      'text/x-custom+json',
    ])
      expect(valueOf('data.customer.id', text, type), String(type)).toBe('c-1');
  });

  it('reads data of any other content type as missing', () => {
    for (const type of [
      'text/plain',
      'application/xml',
      'text/json',
      'application/jsonx',
      'application/json-seq',
      'application/+json',
      'application/json+xml',
      'json',
      '',
    ])
      expect(read('data.customer.id', text, type), type).toEqual(missing);
  });

  it('applies the content type to data already parsed, too', () => {
    expect(read('data.id', order, 'application/xml')).toEqual(missing);
    expect(valueOf('data.id', order, 'application/json')).toBe('o-7');
  });

  it('parses JSON text, decodes and parses UTF-8 bytes, and walks parsed values', () => {
    expect(valueOf('data.customer.address.city', text)).toBe('Lyon');
    expect(valueOf('data.customer.address.city', new TextEncoder().encode(text))).toBe('Lyon');
    expect(valueOf('data.customer.address.city', Buffer.from(text))).toBe('Lyon');
    expect(valueOf('data.0.sku', order.items)).toBe('A-1');
    expect(valueOf('data.name', '{"name": "Zoë ☕"}')).toBe('Zoë ☕');
  });

  it('reads text that does not parse, bytes that are not UTF-8, and no data as missing', () => {
    expect(read('data.a', '{"a": 1')).toEqual(missing);
    expect(read('data.a', 'a=1')).toEqual(missing);
    expect(read('data.a', new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]))).toEqual(
      missing,
    );
    expect(read('data.a', '"a"')).toEqual(missing); // a JSON string has no members
    expect(read('data.a', undefined)).toEqual(missing);
    expect(compile('data.a').evaluate(attributes).errors[0]).toBeInstanceOf(CesqlMissingAttributeError);
  });

  it('tells JSON content types from others', () => {
    expect(isJsonContentType(undefined)).toBe(true);
    expect(isJsonContentType('application/problem+json')).toBe(true);
    expect(isJsonContentType(42)).toBe(false);
  });
});

describe('filters > cesql > data paths > evaluation', () => {
  it('parses the data once per evaluation however many paths the expression reads', () => {
    const expression = compile("data.customer.id = 'c-1' AND data.items.0.sku = 'A-1' AND data.vip");
    const event = { ...attributes, data: JSON.stringify(order) };
    const parse = vi.spyOn(JSON, 'parse');
    expect(expression.matches(event)).toBe(true);
    expect(parse).toHaveBeenCalledTimes(1);
    expect(expression.evaluate(event).value).toBe(true);
    expect(parse).toHaveBeenCalledTimes(2);
  });

  it('reads the data of each evaluation afresh, even from the same object', () => {
    const expression = compile('data.total > 100');
    const event: Record<string, unknown> = { ...attributes, data: '{"total": 250}' };
    expect(expression.matches(event)).toBe(true);
    event['data'] = '{"total": 50}';
    expect(expression.matches(event)).toBe(false);
    const bytes = new TextEncoder().encode('{"total": 250}');
    event['data'] = bytes;
    expect(expression.matches(event)).toBe(true);
    bytes.set(new TextEncoder().encode('{"total": 050}')); // same array, new content, not JSON
    expect(expression.evaluate(event).errors[0]).toBeInstanceOf(CesqlMissingAttributeError);
  });

  it('does not touch the data of an expression without data paths', () => {
    const parse = vi.spyOn(JSON, 'parse');
    expect(compile("type = 'order'").matches({ ...attributes, data: '{"a": 1}' })).toBe(true);
    expect(parse).not.toHaveBeenCalled();
  });

  it('asks a custom reader for data paths by name', () => {
    const asked: string[] = [];
    const result = compile("type = 'order' AND data.items.0.sku = 'A-1'").evaluateWith(null, (_, name) => {
      asked.push(name);
      return name === 'type' ? 'order' : 'A-1';
    });
    expect(result.value).toBe(true);
    expect(asked).toEqual(['type', 'data.items.0.sku']);
  });

  it('reads data paths in sql dialect filters over plain events', () => {
    const filter = compileFilter({
      all: [{ exact: { type: 'order' } }, { sql: 'data.total > 100' }, { sql: "data.Tier = 'gold'" }],
    });
    expect(filter.attributes).toEqual(['type', 'data.total', 'data.Tier']);
    const parse = vi.spyOn(JSON, 'parse');
    expect(filter.matches({ ...attributes, data: JSON.stringify(order) })).toBe(true);
    expect(parse).toHaveBeenCalledTimes(1);
    expect(filter.matches({ ...attributes, data: '{"total": 500}' })).toBe(false);
  });
});

describe('filters > cesql > data paths > over stored bytes', () => {
  const utf8 = new TextEncoder();

  function event(data: unknown, datacontenttype?: string, type = 'order'): EventFields {
    return {
      id: `e-${type}`,
      source: '/shop',
      type,
      ...(datacontenttype === undefined ? {} : { datacontenttype }),
      ...(data === undefined
        ? {}
        : {
            data:
              data instanceof Uint8Array
                ? data
                : utf8.encode(typeof data === 'string' ? data : JSON.stringify(data)),
          }),
    };
  }

  const keepEvents = (filter: unknown, events: EventFields[]) =>
    SubscriptionFilter.parse(JSON.stringify(filter)).keepEvents(encodeEventBatch(events));

  it('reads data paths from the data bytes of each event', () => {
    const events = [
      event({ total: 250, customer: { id: 'c-1' }, items: [{ sku: 'A-1' }] }),
      event({ total: 50, customer: { id: 'c-2' }, items: [] }),
      event({ total: 900, customer: { id: 'c-3' }, items: [{ sku: 'B-2' }] }, 'application/json'),
    ];
    expect(keepEvents({ sql: 'data.total > 100' }, events)).toEqual(new Uint8Array([0b101]));
    expect(keepEvents({ sql: "data.items.0.sku = 'B-2'" }, events)).toEqual(new Uint8Array([0b100]));
    expect(keepEvents({ sql: "data.customer.id LIKE 'c-%'" }, events)).toBeNull();
    expect(keepEvents({ sql: "data.customer.id = 'c-9'" }, events)).toBe('none');
    expect(keepEvents({ sql: 'EXISTS data.items.0.sku' }, events)).toEqual(new Uint8Array([0b101]));
  });

  it('maps the values as over plain events', () => {
    const events = [event({ s: 'x', b: true, i: 7, f: 1.5, n: null, o: {}, a: [] })];
    expect(
      keepEvents({ sql: "data.s = 'x' AND data.b AND data.i = 7 AND data.f = '1.5'" }, events),
    ).toBeNull();
    for (const path of ['data.n', 'data.o', 'data.a', 'data.absent'])
      expect(keepEvents({ sql: `NOT EXISTS ${path}` }, events), path).toBeNull();
  });

  it('reads only JSON data: by content type, parameters ignored, and only when it parses', () => {
    const events = [
      event({ a: 1 }, 'application/cloudevents+json; charset=utf-8'),
      event({ a: 1 }, 'text/plain'),
      event('{"a": 1', 'application/json'),
      event(undefined),
      event(new Uint8Array([0x7b, 0xff, 0x7d])),
      event({ a: 1 }, 'application/vnd.acme+json'),
    ];
    expect(keepEvents({ sql: 'data.a = 1' }, events)).toEqual(new Uint8Array([0b100001]));
  });

  it('reads attributes and extensions next to data paths as before', () => {
    const events = [event({ a: 1 }, undefined, 'order'), event({ a: 1 }, undefined, 'refund')];
    expect(keepEvents({ sql: "type = 'refund' AND data.a = 1" }, events)).toEqual(new Uint8Array([0b10]));
    expect(keepEvents([{ prefix: { type: 'ord' } }, { sql: 'data.a = 1' }], events)).toEqual(
      new Uint8Array([0b01]),
    );
  });

  it('parses each event once, however many paths and sql filters read it', () => {
    const filter = SubscriptionFilter.parse(
      JSON.stringify([{ sql: 'data.a = 1 AND data.b.c = 2' }, { sql: 'EXISTS data.b.c' }]),
    );
    const block = encodeEventBatch([
      event({ a: 1, b: { c: 2 } }),
      event({ a: 1, b: { c: 3 } }),
      event('x', 'text/plain'),
    ]);
    const parse = vi.spyOn(JSON, 'parse');
    expect(filter.keepEvents(block)).toEqual(new Uint8Array([0b001]));
    expect(parse).toHaveBeenCalledTimes(2); // the text/plain event is not parsed at all
    expect(filter.keepEvents(block)).toEqual(new Uint8Array([0b001]));
    expect(parse).toHaveBeenCalledTimes(4);
  });

  it('forgets the parsed data when it moves to another block, even at the same offsets', () => {
    const filter = SubscriptionFilter.parse(JSON.stringify({ sql: 'data.a = 2' }));
    const first = encodeEventBatch([event({ a: 1 })]);
    const second = encodeEventBatch([event({ a: 2 })]);
    expect(first.length).toBe(second.length);
    expect(filter.keepEvents(first)).toBe('none');
    expect(filter.keepEvents(second)).toBeNull();
    first.set(second); // the same bytes object, new content
    expect(filter.keepEvents(first)).toBeNull();
  });

  it('does not read the data of a filter without data paths', () => {
    const filter = SubscriptionFilter.parse(JSON.stringify({ sql: "type = 'order'" }));
    const block = encodeEventBatch([event({ a: 1 })]);
    const parse = vi.spyOn(JSON, 'parse');
    expect(filter.keepEvents(block)).toBeNull();
    expect(parse).not.toHaveBeenCalled();
  });
});
