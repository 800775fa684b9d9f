import { describe, expect, it } from 'vitest';
import {
  CloudEventValidationError,
  EventsErrorCode,
  MalformedBodyError,
  TooManyEventsError,
  UnsupportedContentTypeError,
  createEvent,
  dataAsJson,
  dataAsText,
  formatHttpBatch,
  formatHttpBinary,
  formatHttpStructured,
  isEventsError,
  parseHttpRequest,
} from '../../src/events/index.js';
import type { CloudEvent, HttpMessage } from '../../src/events/index.js';

const encoder = new TextEncoder();
const required = {
  'ce-specversion': '1.0',
  'ce-type': 'com.example.someevent',
  'ce-source': '/mycontext/subcontext',
  'ce-id': '1234-1234-1234',
};

function binary(headers: Record<string, string>, body = new Uint8Array(0)): HttpMessage {
  return { headers: { ...required, ...headers }, body };
}

function only(message: HttpMessage): CloudEvent {
  const { events } = parseHttpRequest(message);
  expect(events).toHaveLength(1);
  return events[0]!;
}

/** The error a parse throws. */
function failure(parse: () => unknown): Error {
  try {
    parse();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the parse to fail');
}

function rulesOfFailure(message: HttpMessage): [string, string][] {
  const error = failure(() => parseHttpRequest(message));
  expect(error).toBeInstanceOf(CloudEventValidationError);
  return (error as CloudEventValidationError).issues.map((issue) => [issue.attribute, issue.rule]);
}

describe('events > http-binding > binary mode in', () => {
  it('reads the spec example: attributes from ce- headers, Content-Type and body as data', () => {
    const body = encoder.encode('{"a": 1}');
    const { mode, events } = parseHttpRequest(
      binary(
        { 'ce-time': '2018-04-05T03:56:24Z', 'content-type': 'application/json; charset=utf-8', host: 'x' },
        body,
      ),
    );
    expect(mode).toBe('binary');
    expect(events).toEqual([
      {
        specversion: '1.0',
        type: 'com.example.someevent',
        source: '/mycontext/subcontext',
        id: '1234-1234-1234',
        time: '2018-04-05T03:56:24Z',
        datacontenttype: 'application/json; charset=utf-8',
        data: body,
      },
    ]);
    // A view of the body, not a copy.
    expect(events[0]!.data).toBe(body);
  });

  it('reads extensions as Strings, since headers carry no type', () => {
    expect(only(binary({ 'ce-comexampleothervalue': '5', 'ce-flag': 'true' })).extensions).toEqual({
      comexampleothervalue: '5',
      flag: 'true',
    });
  });

  it('reads an empty body as no data and a missing Content-Type as no datacontenttype', () => {
    const event = only(binary({}));
    expect(event).not.toHaveProperty('data');
    expect(event).not.toHaveProperty('datacontenttype');
  });

  it('percent-decodes values, accepting lower-case hex and needless escapes', () => {
    const event = only(
      binary({ 'ce-subject': 'Euro%20%e2%82%ac%20%F0%9F%98%80', 'ce-id': '%41%42C', 'ce-source': '/a%2Fb' }),
    );
    expect(event.subject).toBe('Euro € 😀');
    expect(event.id).toBe('ABC');
    expect(event.source).toBe('/a/b');
  });

  it('undoes quoted strings (older senders) before percent-decoding', () => {
    const event = only(binary({ 'ce-subject': '"a b" and "say \\"hi\\"" 100%25', 'ce-tenant': '"acme"' }));
    expect(event.subject).toBe('a b and say "hi" 100%');
    expect(event.extensions).toEqual({ tenant: 'acme' });
  });

  it('keeps a leading U+FEFF as part of the value', () => {
    expect(only(binary({ 'ce-subject': '%EF%BB%BFx' })).subject).toBe('\ufeffx');
  });

  it.each([
    ['an overlong UTF-8 form', '%C0%A0'],
    ['an encoded surrogate', '%ED%A0%80'],
    ['a truncated sequence', 'caf%C3'],
    ['a "%" that starts no escape', '100%'],
    ['a bad hex digit', '%zz'],
    ['raw non-ASCII', 'café'],
    ['an unclosed quoted string', '"abc'],
  ])('rejects a header value with %s, naming the attribute', (_, value) => {
    expect(rulesOfFailure(binary({ 'ce-subject': value }))).toEqual([['subject', 'header-encoding']]);
  });

  it('still applies String rules to decoded values', () => {
    expect(rulesOfFailure(binary({ 'ce-subject': 'a%00b' }))).toEqual([['subject', 'forbidden-character']]);
  });

  it('rejects ce-datacontenttype, which binary mode carries as Content-Type', () => {
    expect(
      rulesOfFailure(binary({ 'ce-datacontenttype': 'text/plain', 'content-type': 'text/plain' })),
    ).toEqual([['datacontenttype', 'mutually-exclusive']]);
  });

  it('rejects headers that are not valid attribute names, and ce-data', () => {
    expect(rulesOfFailure(binary({ 'ce-my_ext': 'x', 'ce-data': 'y', 'ce-': 'z' }))).toEqual([
      ['my_ext', 'attribute-name'],
      ['data', 'reserved-name'],
      ['', 'attribute-name'],
    ]);
  });

  it('rejects a binary message missing a required attribute, naming it', () => {
    const headers: Record<string, string> = { ...required };
    delete headers['ce-source'];
    expect(rulesOfFailure({ headers, body: new Uint8Array(0) })).toEqual([['source', 'required']]);
  });

  it('validates Content-Type as the datacontenttype', () => {
    expect(rulesOfFailure(binary({ 'content-type': 'json' }))).toEqual([['datacontenttype', 'media-type']]);
  });

  it('rejects a body with no ce- headers and no CloudEvents content type as unsupported', () => {
    const plainJson = failure(() =>
      parseHttpRequest({
        headers: { 'content-type': 'application/json' },
        body: encoder.encode('{"specversion":"1.0"}'),
      }),
    );
    expect(plainJson).toBeInstanceOf(UnsupportedContentTypeError);
    expect(isEventsError(plainJson, EventsErrorCode.UNSUPPORTED_CONTENT_TYPE)).toBe(true);
    expect((plainJson as UnsupportedContentTypeError).contentType).toBe('application/json');
    expect(plainJson.message).toMatch(/application\/cloudevents\+json/);
    expect(failure(() => parseHttpRequest({ headers: {}, body: new Uint8Array(0) }))).toBeInstanceOf(
      UnsupportedContentTypeError,
    );
  });
});

describe('events > http-binding > binary mode out', () => {
  it('percent-encodes the spec example exactly as §3.1.3.2 shows', () => {
    const event = createEvent({ type: 't', source: '/s', id: '1', time: null, subject: 'Euro € 😀' });
    expect(formatHttpBinary(event).headers['ce-subject']).toBe('Euro%20%E2%82%AC%20%F0%9F%98%80');
  });

  it('encodes space, double quote and percent but leaves other printable ASCII alone', () => {
    const event = createEvent({ type: 't', source: '/s', id: `a "b" 100% !#$&'()*+,/:;<=>?@[\\]^_\`{|}~` });
    expect(formatHttpBinary(event).headers['ce-id']).toBe(
      `a%20%22b%22%20100%25%20!#$&'()*+,/:;<=>?@[\\]^_\`{|}~`,
    );
  });

  it('maps attributes to ce- headers, datacontenttype to content-type and data to the body', () => {
    const data = new Uint8Array([1, 2, 3]);
    const event = createEvent({
      type: 'com.example.someevent',
      source: '/mycontext',
      id: 'A234-1234-1234',
      time: '2018-04-05T17:31:00Z',
      subject: 'sub',
      dataschema: 'https://example.com/s.json',
      datacontenttype: 'application/vnd.apache.thrift.binary',
      extensions: {
        comexampleextension1: 'value',
        comexampleothervalue: 5,
        flag: false,
        key: new Uint8Array([255]),
      },
      data,
    });
    const message = formatHttpBinary(event);
    expect(message.headers).toEqual({
      'ce-specversion': '1.0',
      'ce-id': 'A234-1234-1234',
      'ce-source': '/mycontext',
      'ce-type': 'com.example.someevent',
      'ce-subject': 'sub',
      'ce-time': '2018-04-05T17:31:00Z',
      'ce-dataschema': 'https://example.com/s.json',
      'content-type': 'application/vnd.apache.thrift.binary',
      'ce-comexampleextension1': 'value',
      'ce-comexampleothervalue': '5',
      'ce-flag': 'false',
      'ce-key': '/w==',
    });
    expect(message.body).toBe(data);
    expect(formatHttpBinary(createEvent({ type: 't', source: '/s' })).body).toEqual(new Uint8Array(0));
  });

  it('refuses an extension name that would inject a header', () => {
    const event = {
      specversion: '1.0',
      id: '1',
      source: '/s',
      type: 't',
      extensions: { 'x\r\nset-cookie': 'a' },
    } as const;
    expect(() => formatHttpBinary(event)).toThrow(TypeError);
  });

  it('round-trips non-ASCII values and keeps the time offset', () => {
    const event = createEvent({
      type: 'com.example.ünïcode',
      source: '/sensors/%CE%B4',
      id: 'id with spaces and "quotes" and 100%',
      subject: '日本語 😀',
      time: '2026-01-02T03:04:05.123+05:30',
      extensions: { note: 'naïve café' },
      data: { ok: true },
    });
    const back = only(formatHttpBinary(event));
    expect(back).toEqual(event);
    expect(back.time).toBe('2026-01-02T03:04:05.123+05:30');
  });
});

describe('events > http-binding > structured mode', () => {
  const event = createEvent({
    type: 't',
    source: '/s',
    time: '2026-01-02T03:04:05.123+05:30',
    extensions: { attempt: 3 },
    data: { a: 1 },
  });

  it('round-trips an event, keeping extension types and the time offset', () => {
    const message = formatHttpStructured(event);
    expect(message.headers).toEqual({ 'content-type': 'application/cloudevents+json; charset=utf-8' });
    const { mode, events } = parseHttpRequest(message);
    expect(mode).toBe('structured');
    expect(events).toEqual([event]);
  });

  it.each([
    'application/cloudevents+json',
    'Application/CloudEvents+JSON; charset=UTF-8',
    'application/cloudevents+json;charset="utf-8"',
  ])('accepts Content-Type %s', (contentType) => {
    expect(
      only({ headers: { 'content-type': contentType }, body: formatHttpStructured(event).body }),
    ).toEqual(event);
  });

  it('reads the body, not ce- headers that may accompany it', () => {
    const message = formatHttpStructured(event);
    const parsed = only({ headers: { ...message.headers, 'ce-id': 'other' }, body: message.body });
    expect(parsed.id).toBe(event.id);
  });

  it.each([
    ['another event format', 'application/cloudevents+avro'],
    ['another charset', 'application/cloudevents+json; charset=iso-8859-1'],
    ['a batch format other than JSON', 'application/cloudevents-batch+xml'],
  ])('rejects %s as an unsupported content type', (_, contentType) => {
    const error = failure(() =>
      parseHttpRequest({ headers: { 'content-type': contentType }, body: formatHttpStructured(event).body }),
    );
    expect(error).toBeInstanceOf(UnsupportedContentTypeError);
    expect((error as UnsupportedContentTypeError).code).toBe('UNSUPPORTED_CONTENT_TYPE');
  });

  it('rejects a body that is not JSON as malformed', () => {
    const error = failure(() =>
      parseHttpRequest({
        headers: { 'content-type': 'application/cloudevents+json' },
        body: encoder.encode('{oops'),
      }),
    );
    expect(error).toBeInstanceOf(MalformedBodyError);
    expect(isEventsError(error, EventsErrorCode.MALFORMED_BODY)).toBe(true);
  });

  it('rejects an invalid event with its issues', () => {
    const body = encoder.encode(
      JSON.stringify({ specversion: '1.0', id: '1', source: '/s', type: 't', time: '2026-01-02' }),
    );
    expect(rulesOfFailure({ headers: { 'content-type': 'application/cloudevents+json' }, body })).toEqual([
      ['time', 'rfc3339'],
    ]);
  });
});

describe('events > http-binding > batch mode', () => {
  const events = [
    createEvent({ type: 'a', source: '/s', data: 'one' }),
    createEvent({ type: 'b', source: '/s', data: new Uint8Array([2]) }),
    createEvent({ type: 'c', source: '/s', data: [3] }),
  ];

  it('round-trips a batch', () => {
    const message = formatHttpBatch(events);
    expect(message.headers).toEqual({ 'content-type': 'application/cloudevents-batch+json; charset=utf-8' });
    const parsed = parseHttpRequest(message);
    expect(parsed.mode).toBe('batch');
    expect(parsed.events).toEqual(events);
    expect(dataAsText(parsed.events[0]!)).toBe('one');
    expect(dataAsJson(parsed.events[2]!)).toEqual([3]);
  });

  it('accepts an empty batch as no events', () => {
    expect(parseHttpRequest(formatHttpBatch([]))).toEqual({ mode: 'batch', events: [] });
  });

  it('rejects the whole batch for one bad event, naming its index and issues', () => {
    const objects = JSON.parse(new TextDecoder().decode(formatHttpBatch(events).body)) as Record<
      string,
      unknown
    >[];
    objects[1]!['subject'] = '';
    const error = failure(() =>
      parseHttpRequest({
        headers: { 'content-type': 'application/cloudevents-batch+json' },
        body: encoder.encode(JSON.stringify(objects)),
      }),
    );
    expect(isEventsError(error, EventsErrorCode.INVALID_EVENT)).toBe(true);
    const { index, issues, invalidEvents } = error as CloudEventValidationError;
    expect(index).toBe(1);
    expect(issues).toEqual([
      { attribute: 'subject', rule: 'non-empty', message: 'must be a non-empty string' },
    ]);
    expect(invalidEvents).toHaveLength(1);
  });

  it('rejects a batch over batchEventCountMax', () => {
    const error = failure(() => parseHttpRequest(formatHttpBatch(events), { batchEventCountMax: 2 }));
    expect(error).toBeInstanceOf(TooManyEventsError);
    expect(error).toMatchObject({ code: 'TOO_MANY_EVENTS', count: 3, max: 2 });
  });

  it('rejects a batch body that is not an array as malformed', () => {
    const error = failure(() =>
      parseHttpRequest({
        headers: { 'content-type': 'application/cloudevents-batch+json' },
        body: encoder.encode('{}'),
      }),
    );
    expect(error).toBeInstanceOf(MalformedBodyError);
  });
});

describe('events > http-binding > errors', () => {
  it('gives every error a distinct code and recognises them by brand', () => {
    expect(new Set(Object.values(EventsErrorCode)).size).toBe(Object.keys(EventsErrorCode).length);
    const error = new TooManyEventsError(3, 2);
    expect(isEventsError(error)).toBe(true);
    expect(isEventsError(error, EventsErrorCode.MALFORMED_BODY)).toBe(false);
    expect(isEventsError(new Error('x'))).toBe(false);
    expect(isEventsError({ code: 'INVALID_EVENT' })).toBe(false);
    expect(() => new CloudEventValidationError([])).toThrow(RangeError);
  });
});
