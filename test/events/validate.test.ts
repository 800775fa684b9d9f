import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, ValidationRule, validateEvent } from '../../src/events/index.js';
import type { ValidationLimits } from '../../src/events/index.js';

const base = {
  specversion: '1.0',
  id: 'A234-1234-1234',
  source: 'https://github.com/cloudevents/spec/pull',
  type: 'com.github.pull_request.opened',
} as const;

function issuesOf(fields: Record<string, unknown>, limits?: ValidationLimits) {
  return validateEvent({ ...base, ...fields }, limits);
}

/** `[attribute, rule]` pairs, the part of an issue callers switch on. */
function rulesOf(fields: Record<string, unknown>, limits?: ValidationLimits): [string, string][] {
  return issuesOf(fields, limits).map((issue) => [issue.attribute, issue.rule]);
}

describe('events > validate > whole events', () => {
  it('accepts the example event of the spec', () => {
    const event = {
      ...base,
      subject: '123',
      time: '2018-04-05T17:31:00Z',
      datacontenttype: 'text/xml',
      extensions: { comexampleextension1: 'value', comexampleothervalue: 5 },
      data: new TextEncoder().encode('<much wow="xml"/>'),
    };
    expect(validateEvent(event)).toEqual([]);
  });

  it('reports every broken rule at once, one issue per attribute, each with a message', () => {
    const issues = issuesOf({ id: '', source: 'not a uri', time: 'yesterday', extensions: { Bad: 1 } });
    expect(issues.map((issue) => [issue.attribute, issue.rule])).toEqual([
      ['id', 'non-empty'],
      ['source', 'uri-reference'],
      ['time', 'rfc3339'],
      ['Bad', 'attribute-name'],
    ]);
    for (const issue of issues) expect(issue.message.length).toBeGreaterThan(5);
  });

  it('throws TypeError for something that is not an object at all', () => {
    expect(() => validateEvent('event')).toThrow(TypeError);
    expect(() => validateEvent(null)).toThrow(TypeError);
  });

  it('rejects fields that are not part of the model, naming them', () => {
    expect(rulesOf({ comexample: 'x', data_base64: 'AA==' })).toEqual([
      ['comexample', 'unknown-attribute'],
      ['data_base64', 'unknown-attribute'],
    ]);
  });
});

describe('events > validate > required attributes', () => {
  it.each(['specversion', 'id', 'source', 'type'])(
    'rejects an event without %s, naming it and the rule',
    (name) => {
      expect(rulesOf({ [name]: undefined })).toEqual([[name, ValidationRule.REQUIRED]]);
      expect(rulesOf({ [name]: null })).toEqual([[name, ValidationRule.REQUIRED]]);
    },
  );

  it.each(['id', 'source', 'type'])('rejects an empty %s', (name) => {
    expect(rulesOf({ [name]: '' })).toEqual([[name, 'non-empty']]);
  });

  it('rejects a number or an object where a String is required (untrusted input)', () => {
    expect(rulesOf({ id: 42, source: {}, type: true, specversion: 1 })).toEqual([
      ['specversion', 'value-type'],
      ['id', 'value-type'],
      ['source', 'value-type'],
      ['type', 'value-type'],
    ]);
  });

  it('accepts only specversion 1.0', () => {
    expect(rulesOf({ specversion: '0.3' })).toEqual([['specversion', 'specversion']]);
    expect(rulesOf({ specversion: '1.0.2' })).toEqual([['specversion', 'specversion']]);
  });
});

describe('events > validate > source (URI-reference)', () => {
  it.each([
    'https://github.com/cloudevents',
    'mailto:cncf-wg-serverless@lists.cncf.io',
    'urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66',
    'cloudevents/spec/pull/123',
    '/cloudevents/spec/pull/123',
    '/sensors/tn-1234567/alerts',
    '1-555-123-4567',
    'http://[2001:db8::7]:8080/x?y=1#z',
    'http://user:pw@192.0.2.1/',
    '//example.com/path',
    '#fragment-only',
    'caf%C3%A9',
  ])('accepts the URI-reference %s', (source) => {
    expect(issuesOf({ source })).toEqual([]);
  });

  it.each([
    ['a space', 'has space'],
    ['an unclosed IPv6 literal', 'http://[::1'],
    ['a bad IPv6 literal', 'http://[1:2:3:4:5:6:7:8:9]/'],
    ['a bad percent-escape', '/a%zz'],
    ['an empty scheme', ':nothing'],
    ['a backslash', 'a\\b'],
    ['raw non-ASCII (an IRI, not a URI)', '/café'],
    ['a colon in the first segment of a relative path', '1-555:123'],
  ])('rejects a source with %s, naming the attribute and the rule', (_, source) => {
    expect(rulesOf({ source })).toEqual([['source', 'uri-reference']]);
  });
});

describe('events > validate > subject', () => {
  it('accepts any non-empty String', () => {
    expect(issuesOf({ subject: 'mynewfile.jpg' })).toEqual([]);
  });

  it('rejects an empty subject and a non-string one', () => {
    expect(rulesOf({ subject: '' })).toEqual([['subject', 'non-empty']]);
    expect(rulesOf({ subject: 7 })).toEqual([['subject', 'value-type']]);
    expect(rulesOf({ subject: null })).toEqual([['subject', 'value-type']]);
  });
});

describe('events > validate > time (RFC 3339)', () => {
  it.each([
    '2018-04-05T17:31:00Z',
    '2026-01-02T03:04:05.123+05:30',
    '1985-04-12T23:20:50.52Z',
    '1996-12-19T16:39:57-08:00',
    '1937-01-01T12:00:27.87+00:20',
    '2018-04-05t17:31:00z',
    '2018-04-05T17:31:00-00:00',
    '2000-02-29T00:00:00Z',
    '2024-02-29T00:00:00.000000001Z',
    '0000-01-01T00:00:00Z',
  ])('accepts %s', (time) => {
    expect(issuesOf({ time })).toEqual([]);
  });

  it('rejects a time without an offset, naming the attribute and the rule', () => {
    const [issue, ...rest] = issuesOf({ time: '2018-04-05T17:31:00' });
    expect(rest).toEqual([]);
    expect(issue).toMatchObject({ attribute: 'time', rule: 'rfc3339' });
    expect(issue!.message).toMatch(/offset/);
  });

  it.each([
    ['a space instead of T', '2018-04-05 17:31:00Z'],
    ['a date only', '2018-04-05'],
    ['a compact offset', '2018-04-05T17:31:00+0530'],
    ['an empty fraction', '2018-04-05T17:31:00.Z'],
    ['a two-digit year', '18-04-05T17:31:00Z'],
    ['month 13', '2018-13-01T00:00:00Z'],
    ['month 00', '2018-00-01T00:00:00Z'],
    ['day 00', '2018-04-00T00:00:00Z'],
    ['April 31', '2018-04-31T00:00:00Z'],
    ['February 29 in a common year', '2023-02-29T00:00:00Z'],
    ['February 29 in 1900 (not a leap year)', '1900-02-29T00:00:00Z'],
    ['hour 24', '2018-04-05T24:00:00Z'],
    ['minute 60', '2018-04-05T17:60:00Z'],
    ['second 61', '2018-04-05T17:31:61Z'],
    ['offset hour 24', '2018-04-05T17:31:00+24:00'],
    ['offset minute 60', '2018-04-05T17:31:00+05:60'],
    ['a Date.toString() form', 'Thu Apr 05 2018 17:31:00 GMT+0000'],
  ])('rejects a time with %s', (_, time) => {
    expect(rulesOf({ time })).toEqual([['time', 'rfc3339']]);
  });

  it('accepts second 60 only as a leap second: 23:59:60 UTC on the last day of a month', () => {
    expect(issuesOf({ time: '1990-12-31T23:59:60Z' })).toEqual([]);
    expect(issuesOf({ time: '2016-12-31T23:59:60.5Z' })).toEqual([]);
    // RFC 3339 §5.8's own example: the same leap second seen from UTC-8.
    expect(issuesOf({ time: '1990-12-31T15:59:60-08:00' })).toEqual([]);
    expect(issuesOf({ time: '2015-07-01T05:29:60+05:30' })).toEqual([]);
    expect(rulesOf({ time: '2018-04-05T12:00:60Z' })).toEqual([['time', 'rfc3339']]);
    expect(rulesOf({ time: '2018-06-15T23:59:60Z' })).toEqual([['time', 'rfc3339']]);
    expect(rulesOf({ time: '1990-12-31T23:59:60+01:00' })).toEqual([['time', 'rfc3339']]);
  });
});

describe('events > validate > datacontenttype (RFC 2046)', () => {
  it.each([
    'application/json',
    'text/xml',
    'image/png',
    'application/vnd.apache.thrift.binary',
    'application/cloudevents+json;charset=UTF-8',
    'text/plain; charset="utf-8"',
    'multipart/form-data; boundary=----abc123',
    'text/plain; format=flowed; charset=us-ascii',
    'application/x-custom; note="a \\"quoted\\" value"',
  ])('accepts %s', (datacontenttype) => {
    expect(issuesOf({ datacontenttype })).toEqual([]);
  });

  it.each([
    'json',
    'text/',
    '/plain',
    'text/plain;',
    'text plain/x',
    'text/plain; charset',
    'text/plain; a="open',
  ])('rejects %j, naming the attribute and the rule', (datacontenttype) => {
    expect(rulesOf({ datacontenttype })).toEqual([['datacontenttype', 'media-type']]);
  });
});

describe('events > validate > dataschema (absolute URI)', () => {
  it.each([
    'https://example.com/schemas/order.json',
    'urn:example:order:v2',
    'https://example.com/order.json#/v2',
  ])('accepts %s', (dataschema) => {
    expect(issuesOf({ dataschema })).toEqual([]);
  });

  it('rejects a relative reference and an empty string', () => {
    expect(rulesOf({ dataschema: '/schemas/order.json' })).toEqual([['dataschema', 'absolute-uri']]);
    expect(rulesOf({ dataschema: 'order.json' })).toEqual([['dataschema', 'absolute-uri']]);
    expect(rulesOf({ dataschema: '' })).toEqual([['dataschema', 'non-empty']]);
  });
});

describe('events > validate > extension attribute names', () => {
  it('accepts lower-case ASCII letters and digits of any length', () => {
    expect(
      issuesOf({
        extensions: { comexampleextension1: 'a', a1: 'b', '123': 'c', longerthantwentycharacters: 'd' },
      }),
    ).toEqual([]);
  });

  it.each(['comExample', 'com_example', 'com-example', 'café', ''])('rejects the name %j', (name) => {
    expect(rulesOf({ extensions: { [name]: 'x' } })).toEqual([[name, 'attribute-name']]);
  });

  it.each([
    'id',
    'source',
    'specversion',
    'type',
    'subject',
    'time',
    'datacontenttype',
    'dataschema',
    'data',
    'data_base64',
  ])('rejects an extension named like the reserved %s', (name) => {
    expect(rulesOf({ extensions: { [name]: 'x' } })).toEqual([[name, 'reserved-name']]);
  });

  it('rejects extensions that are not an object of values', () => {
    expect(rulesOf({ extensions: ['a'] })).toEqual([['extensions', 'value-type']]);
    expect(rulesOf({ extensions: 'a' })).toEqual([['extensions', 'value-type']]);
  });
});

describe('events > validate > extension attribute values', () => {
  it('accepts Strings (even empty), Integers, Booleans and Binary', () => {
    const extensions = {
      s: '',
      i: -5,
      b: false,
      bin: new Uint8Array([1, 2]),
      uri: 'https://x',
      ts: '2018-04-05T17:31:00Z',
    };
    expect(issuesOf({ extensions })).toEqual([]);
  });

  it('accepts the int32 bounds and rejects anything past them or not whole', () => {
    expect(issuesOf({ extensions: { max: 2147483647, min: -2147483648 } })).toEqual([]);
    expect(
      rulesOf({ extensions: { a: 2147483648, b: -2147483649, c: 1.5, d: Number.NaN, e: Infinity } }),
    ).toEqual([
      ['a', 'int32'],
      ['b', 'int32'],
      ['c', 'int32'],
      ['d', 'int32'],
      ['e', 'int32'],
    ]);
  });

  it('rejects values of no CloudEvents type, naming the extension', () => {
    expect(rulesOf({ extensions: { o: { a: 1 }, a: [1], n: null, u: undefined, big: 1n } })).toEqual([
      ['o', 'value-type'],
      ['a', 'value-type'],
      ['n', 'value-type'],
      ['u', 'value-type'],
      ['big', 'value-type'],
    ]);
  });
});

describe('events > validate > String characters', () => {
  it.each([
    ['U+0000', '\u0000'],
    ['U+000A (newline)', '\n'],
    ['U+001F', '\u001f'],
    ['U+007F', '\u007f'],
    ['U+009F', '\u009f'],
    ['U+FDD0 (noncharacter)', '\ufdd0'],
    ['U+FDEF (noncharacter)', '\ufdef'],
    ['U+FFFE (noncharacter)', '\ufffe'],
    ['U+FFFF (noncharacter)', '\uffff'],
    ['U+1FFFF (noncharacter)', '\u{1ffff}'],
    ['U+10FFFE (noncharacter)', '\u{10fffe}'],
    ['an unpaired high surrogate', '\ud800'],
    ['an unpaired low surrogate', '\udead'],
    ['a reversed surrogate pair', '\udead\ud800'],
  ])('rejects %s in a String, saying which code point and where', (_, character) => {
    const issues = issuesOf({ subject: `ab${character}cd`, extensions: { x: character } });
    expect(issues.map((issue) => [issue.attribute, issue.rule])).toEqual([
      ['subject', 'forbidden-character'],
      ['x', 'forbidden-character'],
    ]);
    expect(issues[0]!.message).toMatch(/U\+[0-9A-F]{4,6}.* at index 2/);
  });

  it('accepts paired surrogates and other non-ASCII characters', () => {
    expect(issuesOf({ subject: '\ud800\udead é € 😀 \u00a0 \ufdcf \ufffd \u{1fffd}' })).toEqual([]);
  });

  it('checks id and type too', () => {
    expect(rulesOf({ id: 'a\tb', type: 'x\u0000' })).toEqual([
      ['id', 'forbidden-character'],
      ['type', 'forbidden-character'],
    ]);
  });
});

describe('events > validate > limits', () => {
  it('has documented defaults that let any 64 KB event through', () => {
    expect(DEFAULT_LIMITS).toEqual({
      attributeValueBytesMax: 65_536,
      extensionCountMax: 128,
      dataBytesMax: 1_048_576,
      batchEventCountMax: 1000,
    });
    expect(issuesOf({ subject: 'a'.repeat(65_536), data: new Uint8Array(1_048_576) })).toEqual([]);
    expect(rulesOf({ subject: 'a'.repeat(65_537) })).toEqual([['subject', 'too-long']]);
  });

  it('counts attribute values in UTF-8 bytes', () => {
    const limits = { attributeValueBytesMax: 40 };
    expect(
      issuesOf(
        { subject: 'é'.repeat(20), extensions: { e: '😀'.repeat(10), b: new Uint8Array(40) } },
        limits,
      ),
    ).toEqual([]);
    const tooLong = {
      subject: 'é'.repeat(21),
      extensions: { e: `${'😀'.repeat(10)}a`, b: new Uint8Array(41) },
    };
    expect(rulesOf(tooLong, limits)).toEqual([
      ['subject', 'too-long'],
      ['e', 'too-long'],
      ['b', 'too-long'],
    ]);
  });

  it('rejects more extensions than extensionCountMax', () => {
    expect(issuesOf({ extensions: { a: 1, b: 2 } }, { extensionCountMax: 2 })).toEqual([]);
    expect(rulesOf({ extensions: { a: 1, b: 2, c: 3 } }, { extensionCountMax: 2 })).toEqual([
      ['extensions', 'too-many-extensions'],
    ]);
  });

  it('rejects data larger than dataBytesMax and data that is not bytes', () => {
    expect(issuesOf({ data: new Uint8Array(4) }, { dataBytesMax: 4 })).toEqual([]);
    expect(rulesOf({ data: new Uint8Array(5) }, { dataBytesMax: 4 })).toEqual([['data', 'too-large']]);
    expect(rulesOf({ data: 'text' })).toEqual([['data', 'value-type']]);
  });

  it('rejects an over-long value by its length before any regex reads it', () => {
    const hostile = `/${'a/'.repeat(40_000)}\u0000`;
    expect(rulesOf({ source: hostile }, { attributeValueBytesMax: 1000 })).toEqual([['source', 'too-long']]);
  });
});

describe('events > validate > known extensions', () => {
  const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

  it('accepts a W3C traceparent and correlation ids', () => {
    expect(
      issuesOf({ extensions: { traceparent, correlationid: 'txn-abc-123', causationid: 'order-123' } }),
    ).toEqual([]);
    expect(
      issuesOf({
        extensions: { traceparent: `01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future` },
      }),
    ).toEqual([]);
  });

  it.each([
    ['upper-case hex', traceparent.toUpperCase()],
    ['version ff', `ff${traceparent.slice(2)}`],
    ['an all-zero trace id', '00-00000000000000000000000000000000-b7ad6b7169203331-01'],
    ['an all-zero parent id', '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01'],
    ['a version-00 value with an extra field', `${traceparent}-extra`],
    ['a short trace id', '00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01'],
  ])('rejects a traceparent with %s', (_, value) => {
    expect(rulesOf({ extensions: { traceparent: value } })).toEqual([['traceparent', 'traceparent']]);
  });

  it('requires correlationid and causationid to be non-empty Strings', () => {
    expect(rulesOf({ extensions: { correlationid: '', causationid: 5, traceparent: true } })).toEqual([
      ['correlationid', 'non-empty'],
      ['causationid', 'value-type'],
      ['traceparent', 'value-type'],
    ]);
  });
});
