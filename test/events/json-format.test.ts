import { describe, expect, it } from 'vitest';
import {
  CloudEventValidationError,
  MalformedBodyError,
  TooManyEventsError,
  createEvent,
  dataAsJson,
  dataAsText,
  formatJsonBatch,
  formatJsonEvent,
  parseJsonBatch,
  parseJsonEvent,
} from '../../src/events/index.js';
import type { CloudEvent } from '../../src/events/index.js';

const encoder = new TextEncoder();

/** The attribute/rule pairs of a parse failure. */
function rulesOfFailure(parse: () => unknown): [string, string][] {
  try {
    parse();
  } catch (error) {
    expect(error).toBeInstanceOf(CloudEventValidationError);
    return (error as CloudEventValidationError).issues.map((issue) => [issue.attribute, issue.rule]);
  }
  throw new Error('expected the parse to fail');
}

const context = {
  specversion: '1.0',
  type: 'com.example.someevent',
  source: '/mycontext',
  id: 'A234-1234-1234',
  time: '2018-04-05T17:31:00Z',
  comexampleextension1: 'value',
  comexampleothervalue: 5,
};

describe('events > json-format > the spec examples', () => {
  it('reads Binary data from data_base64', () => {
    const event = parseJsonEvent(
      JSON.stringify({
        ...context,
        datacontenttype: 'application/vnd.apache.thrift.binary',
        data_base64: 'AAEC/w==',
      }),
    );
    expect(event.data).toEqual(new Uint8Array([0, 1, 2, 255]));
    expect(event.extensions).toEqual({ comexampleextension1: 'value', comexampleothervalue: 5 });
    expect(event.time).toBe('2018-04-05T17:31:00Z');
  });

  it('reads XML data as a string, treating a null extension as unset', () => {
    const event = parseJsonEvent(
      JSON.stringify({
        ...context,
        unsetextension: null,
        datacontenttype: 'application/xml',
        data: '<much wow="xml"/>',
      }),
    );
    expect(dataAsText(event)).toBe('<much wow="xml"/>');
    expect(event.extensions).not.toHaveProperty('unsetextension');
  });

  it('reads JSON data as its JSON text, treating a null subject as unset', () => {
    const text = `{"specversion":"1.0","type":"t","source":"/s","id":"C234","subject":null,"datacontenttype":"application/json","data":{ "appinfoA" : "abc", "appinfoB" : 123, "appinfoC" : true }}`;
    const event = parseJsonEvent(text);
    expect(dataAsText(event)).toBe('{ "appinfoA" : "abc", "appinfoB" : 123, "appinfoC" : true }');
    expect(dataAsJson(event)).toEqual({ appinfoA: 'abc', appinfoB: 123, appinfoC: true });
    expect(event).not.toHaveProperty('subject');
  });

  it('reads a string without datacontenttype as a JSON string and makes application/json explicit', () => {
    const event = parseJsonEvent(JSON.stringify({ ...context, subject: null, data: "I'm just a string" }));
    expect(event.datacontenttype).toBe('application/json');
    // The binary-mode body of the spec's example: the quotes make it a JSON string.
    expect(dataAsText(event)).toBe(`"I'm just a string"`);
  });

  it('reads the batch example', () => {
    const batch = [
      {
        ...context,
        source: '/mycontext/4',
        datacontenttype: 'application/vnd.apache.thrift.binary',
        data_base64: 'AAE=',
      },
      {
        ...context,
        type: 'com.example.someotherevent',
        source: '/mycontext/9',
        id: 'C234-1234-1234',
        data: { appinfoA: 'abc' },
      },
    ];
    const events = parseJsonBatch(JSON.stringify(batch));
    expect(events.map((event) => event.source)).toEqual(['/mycontext/4', '/mycontext/9']);
    expect(events[0]!.data).toEqual(new Uint8Array([0, 1]));
    expect(dataAsJson(events[1]!)).toEqual({ appinfoA: 'abc' });
  });
});

describe('events > json-format > data', () => {
  it('keeps JSON data byte for byte, so integers beyond 2^53 are not rounded', () => {
    const text =
      '{"specversion":"1.0","type":"t","source":"/s","id":"1","data":{"amount":12345678901234567890,"x":1.10}}';
    const event = parseJsonEvent(text);
    expect(dataAsText(event)).toBe('{"amount":12345678901234567890,"x":1.10}');
    expect(formatJsonEvent(event)).toContain('"data":{"amount":12345678901234567890,"x":1.10}');
  });

  it('finds data under an escaped key and takes the last of duplicate keys, as JSON.parse does', () => {
    const escaped = '{"specversion":"1.0","type":"t","source":"/s","id":"1","d\\u0061ta":[1, "a\\"}"]}';
    expect(dataAsText(parseJsonEvent(escaped))).toBe('[1, "a\\"}"]');
    const duplicate = '{"data":{"data":3},"specversion":"1.0","type":"t","source":"/s","id":"1","data":2}';
    expect(dataAsText(parseJsonEvent(duplicate))).toBe('2');
  });

  it('keeps an explicit JSON null payload as distinct from no data', () => {
    expect(
      dataAsText(parseJsonEvent('{"specversion":"1.0","type":"t","source":"/s","id":"1","data":null}')),
    ).toBe('null');
    expect(parseJsonEvent('{"specversion":"1.0","type":"t","source":"/s","id":"1"}')).not.toHaveProperty(
      'data',
    );
  });

  it('treats any */*+json type as JSON', () => {
    const event = parseJsonEvent(
      JSON.stringify({
        ...context,
        datacontenttype: 'application/vnd.order+json; charset=utf-8',
        data: { a: [1] },
      }),
    );
    expect(dataAsText(event)).toBe('{"a":[1]}');
  });

  it('rejects data and data_base64 together', () => {
    expect(
      rulesOfFailure(() => parseJsonEvent(JSON.stringify({ ...context, data: 'x', data_base64: 'eA==' }))),
    ).toEqual([['data_base64', 'mutually-exclusive']]);
  });

  it.each([
    ['whitespace', 'Zm9v YmE='],
    ['no padding', 'Zm9vYg'],
    ['padding in the middle', 'Zm9v=mE='],
    ['the URL-safe alphabet', 'Zm9v-_8='],
    ['three padding characters', 'Z==='],
  ])('rejects data_base64 with %s', (_, data_base64) => {
    expect(rulesOfFailure(() => parseJsonEvent(JSON.stringify({ ...context, data_base64 })))).toEqual([
      ['data_base64', 'base64'],
    ]);
  });

  it('decodes every padding length and an empty data_base64', () => {
    const decode = (data_base64: string) => parseJsonEvent(JSON.stringify({ ...context, data_base64 })).data;
    expect(decode('Zm9vYmFy')).toEqual(encoder.encode('foobar'));
    expect(decode('Zm9vYg==')).toEqual(encoder.encode('foob'));
    expect(decode('Zm9vYmE=')).toEqual(encoder.encode('fooba'));
    expect(decode('')).toEqual(new Uint8Array(0));
  });

  it('rejects non-string data under a content type that is not JSON', () => {
    expect(
      rulesOfFailure(() =>
        parseJsonEvent(JSON.stringify({ ...context, datacontenttype: 'text/plain', data: { a: 1 } })),
      ),
    ).toEqual([['data', 'value-type']]);
    expect(rulesOfFailure(() => parseJsonEvent(JSON.stringify({ ...context, data_base64: 5 })))).toEqual([
      ['data_base64', 'value-type'],
    ]);
  });

  it('writes binary data as data_base64, text as a string and JSON as JSON', () => {
    const base = { type: 't', source: '/s', id: '1', time: null } as const;
    const binary = JSON.parse(formatJsonEvent(createEvent({ ...base, data: new Uint8Array([0, 1, 255]) })));
    expect(binary).toMatchObject({ datacontenttype: 'application/octet-stream', data_base64: 'AAH/' });
    expect(binary).not.toHaveProperty('data');
    const text = JSON.parse(formatJsonEvent(createEvent({ ...base, data: 'héllo\n' })));
    expect(text).toMatchObject({ datacontenttype: 'text/plain;charset=utf-8', data: 'héllo\n' });
    const xml = JSON.parse(
      formatJsonEvent(createEvent({ ...base, data: '<a/>', datacontenttype: 'application/xml' })),
    );
    expect(xml.data).toBe('<a/>');
    const json = formatJsonEvent(createEvent({ ...base, data: { a: 1 } }));
    expect(json).toBe(
      '{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"application/json","data":{"a":1}}',
    );
  });

  it('falls back to data_base64 when bytes are not what their content type claims', () => {
    const base = { type: 't', source: '/s', id: '1', time: null } as const;
    const notJson = createEvent({
      ...base,
      data: encoder.encode('not json'),
      datacontenttype: 'application/json',
    });
    expect(JSON.parse(formatJsonEvent(notJson))).toMatchObject({ data_base64: btoa('not json') });
    const notUtf8 = createEvent({ ...base, data: new Uint8Array([0xff]), datacontenttype: 'text/plain' });
    expect(JSON.parse(formatJsonEvent(notUtf8))).toMatchObject({ data_base64: '/w==' });
    const latin1 = createEvent({
      ...base,
      data: encoder.encode('abc'),
      datacontenttype: 'text/plain; charset=iso-8859-1',
    });
    expect(JSON.parse(formatJsonEvent(latin1))).toMatchObject({ data_base64: btoa('abc') });
  });
});

describe('events > json-format > attributes', () => {
  it('keeps the extension types JSON has and writes Binary extensions as base64', () => {
    const event = parseJsonEvent(JSON.stringify({ ...context, flag: true, count: -3, text: 'true' }));
    expect(event.extensions).toMatchObject({ flag: true, count: -3, text: 'true' });
    const withBinary = createEvent({
      type: 't',
      source: '/s',
      extensions: { key: new Uint8Array([1, 2, 3]) },
    });
    expect(JSON.parse(formatJsonEvent(withBinary))).toMatchObject({ key: 'AQID' });
  });

  it('rejects extension values of no CloudEvents type with a clear issue', () => {
    const issues = (() => {
      try {
        parseJsonEvent(JSON.stringify({ ...context, nested: { a: 1 }, list: [1], ratio: 1.5 }));
      } catch (error) {
        return (error as CloudEventValidationError).issues;
      }
      return [];
    })();
    expect(issues.map((issue) => [issue.attribute, issue.rule])).toEqual([
      ['nested', 'value-type'],
      ['list', 'value-type'],
      ['ratio', 'int32'],
    ]);
    expect(issues[0]!.message).toMatch(/unsupported type \(an object\)/);
  });

  it('rejects invalid extension names, including __proto__, without assigning them', () => {
    const text =
      '{"specversion":"1.0","type":"t","source":"/s","id":"1","Bad_Name":1,"__proto__":{"polluted":true}}';
    expect(rulesOfFailure(() => parseJsonEvent(text))).toEqual([
      ['Bad_Name', 'attribute-name'],
      ['__proto__', 'attribute-name'],
    ]);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('checks JSON types of context attributes', () => {
    expect(
      rulesOfFailure(() => parseJsonEvent(JSON.stringify({ ...context, id: 1234, time: 0, specversion: 1 }))),
    ).toEqual([
      ['specversion', 'value-type'],
      ['id', 'value-type'],
      ['time', 'value-type'],
    ]);
  });

  it('rejects an unsupported specversion', () => {
    expect(rulesOfFailure(() => parseJsonEvent(JSON.stringify({ ...context, specversion: '0.3' })))).toEqual([
      ['specversion', 'specversion'],
    ]);
  });
});

describe('events > json-format > round trips', () => {
  const event: CloudEvent = {
    specversion: '1.0',
    id: 'e-1',
    source: 'urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66',
    type: 'com.example.order.placed',
    subject: 'ordres/é€😀',
    time: '2026-01-02T03:04:05.123+05:30',
    datacontenttype: 'application/json',
    dataschema: 'https://example.com/schemas/order.json',
    extensions: { tenant: 'acme', attempt: 2, replay: false },
    data: encoder.encode('{"n": 1}'),
  };

  it('returns the same event, time offset included', () => {
    const back = parseJsonEvent(formatJsonEvent(event));
    expect(back).toEqual(event);
    expect(back.time).toBe('2026-01-02T03:04:05.123+05:30');
  });

  it('returns the same events from a batch', () => {
    const second = createEvent({ type: 't', source: '/s', data: new Uint8Array([9]) });
    expect(parseJsonBatch(encoder.encode(formatJsonBatch([event, second])))).toEqual([event, second]);
  });
});

describe('events > json-format > batches', () => {
  const good = { specversion: '1.0', type: 't', source: '/s', id: '1' };

  it('accepts an empty batch, which the spec allows', () => {
    expect(parseJsonBatch('[]')).toEqual([]);
    expect(parseJsonBatch(' [ ] ')).toEqual([]);
  });

  it('finds each element its own data', () => {
    const text = `[{"id":"a","specversion":"1.0","type":"t","source":"/s","data":{"x":"]"}}, ${JSON.stringify(good)},{"data":[2],"specversion":"1.0","type":"t","source":"/s","id":"c"}]`;
    expect(
      parseJsonBatch(text).map((event) => (event.data === undefined ? undefined : dataAsText(event))),
    ).toEqual(['{"x":"]"}', undefined, '[2]']);
  });

  it('rejects a whole batch for one bad event, giving its index and issues', () => {
    const batch = [good, good, { ...good, source: 'bad source' }, good];
    let caught: unknown;
    try {
      parseJsonBatch(JSON.stringify(batch));
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(CloudEventValidationError);
    const error = caught as CloudEventValidationError;
    expect(error.index).toBe(2);
    expect(error.issues).toEqual([expect.objectContaining({ attribute: 'source', rule: 'uri-reference' })]);
    expect(error.invalidEvents.map((invalid) => invalid.index)).toEqual([2]);
    expect(error.message).toMatch(/^invalid CloudEvent at batch index 2: source /);
  });

  it('lists every invalid event of a batch', () => {
    const batch = [{ ...good, id: '' }, good, { ...good, type: 5 }];
    try {
      parseJsonBatch(JSON.stringify(batch));
      expect.unreachable();
    } catch (error) {
      const { invalidEvents, message } = error as CloudEventValidationError;
      expect(
        invalidEvents.map((invalid) => [invalid.index, invalid.issues.map((issue) => issue.rule)]),
      ).toEqual([
        [0, ['non-empty']],
        [2, ['value-type']],
      ]);
      expect(message).toMatch(/and 1 more invalid event in the batch/);
    }
  });

  it('rejects more events than batchEventCountMax before validating any', () => {
    const batch = JSON.stringify([good, good, { nonsense: true }]);
    expect(() => parseJsonBatch(batch, { batchEventCountMax: 2 })).toThrow(TooManyEventsError);
    expect(() => parseJsonBatch(batch, { batchEventCountMax: 2 })).toThrow(
      /at most 2 events; this one has 3/,
    );
  });

  it('rejects a batch that is not an array of objects as malformed', () => {
    expect(() => parseJsonBatch(JSON.stringify(good))).toThrow(MalformedBodyError);
    expect(() => parseJsonBatch(JSON.stringify([good, 'x']))).toThrow(
      /batch element 1 must be a JSON object/,
    );
  });
});

describe('events > json-format > malformed bodies', () => {
  it.each([
    ['not JSON', encoder.encode('{"specversion":')],
    ['empty', new Uint8Array(0)],
    ['not UTF-8', new Uint8Array([0x7b, 0xff, 0x7d])],
    ['an array', encoder.encode('[]')],
    ['a string', encoder.encode('"event"')],
    ['null', encoder.encode('null')],
  ])('rejects a body that is %s with MalformedBodyError', (_, body) => {
    expect(() => parseJsonEvent(body)).toThrow(MalformedBodyError);
  });

  it('accepts a UTF-8 byte-order mark before the JSON', () => {
    const body = new Uint8Array([0xef, 0xbb, 0xbf, ...encoder.encode(JSON.stringify(context))]);
    expect(parseJsonEvent(body).id).toBe('A234-1234-1234');
  });
});
