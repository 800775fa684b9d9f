import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  CloudEventValidationError,
  EventsErrorCode,
  causedBy,
  createEvent,
  dataAsJson,
  dataAsText,
  isEventsError,
  validateEvent,
  type CreateEventInput,
} from '../../src/events/index.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const required = { type: 'com.example.order.placed', source: 'https://example.com/orders' } as const;

describe('events > event > createEvent', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it('fills specversion, a random UUID id and the current time', () => {
    const before = Date.now();
    const event = createEvent(required);
    const after = Date.now();
    expect(event.specversion).toBe('1.0');
    expect(event.id).toMatch(UUID);
    expect(createEvent(required).id).not.toBe(event.id);
    const time = Date.parse(event.time!);
    expect(time).toBeGreaterThanOrEqual(before);
    expect(time).toBeLessThanOrEqual(after);
    expect(event.time).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(event).not.toHaveProperty('data');
    expect(event).not.toHaveProperty('datacontenttype');
  });

  it('keeps a time string exactly as given, offset included', () => {
    expect(createEvent({ ...required, time: '2026-01-02T03:04:05.123+05:30' }).time).toBe(
      '2026-01-02T03:04:05.123+05:30',
    );
  });

  it('writes a Date in UTC, and leaves the time out for null', () => {
    expect(createEvent({ ...required, time: new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 6)) }).time).toBe(
      '2026-01-02T03:04:05.006Z',
    );
    expect(createEvent({ ...required, time: null })).not.toHaveProperty('time');
  });

  it('throws RangeError for an invalid Date', () => {
    expect(() => createEvent({ ...required, time: new Date('nope') })).toThrow(RangeError);
  });

  it('stores a string as UTF-8 text/plain', () => {
    const event = createEvent({ ...required, data: 'héllo' });
    expect(event.datacontenttype).toBe('text/plain;charset=utf-8');
    expect(event.data).toEqual(new TextEncoder().encode('héllo'));
    expect(dataAsText(event)).toBe('héllo');
  });

  it('stores any other value as UTF-8 JSON', () => {
    const order = { id: 17, items: ['a', 'b'], paid: true, note: null };
    const event = createEvent({ ...required, data: order });
    expect(event.datacontenttype).toBe('application/json');
    expect(dataAsText(event)).toBe(JSON.stringify(order));
    expect(dataAsJson(event)).toEqual(order);
    expect(dataAsJson(createEvent({ ...required, data: null }))).toBeNull();
    expect(dataAsJson(createEvent({ ...required, data: 0 }))).toBe(0);
  });

  it('stores bytes as they are, without copying, as application/octet-stream', () => {
    const bytes = new Uint8Array([0, 255, 1]);
    const event = createEvent({ ...required, data: bytes });
    expect(event.data).toBe(bytes);
    expect(event.datacontenttype).toBe('application/octet-stream');
  });

  it('keeps an explicit datacontenttype', () => {
    expect(
      createEvent({ ...required, data: '<a/>', datacontenttype: 'application/xml' }).datacontenttype,
    ).toBe('application/xml');
    expect(
      createEvent({ ...required, data: { a: 1 }, datacontenttype: 'application/vnd.order+json' })
        .datacontenttype,
    ).toBe('application/vnd.order+json');
  });

  it('copies extensions, so changing the caller object later changes nothing, and drops an empty set', () => {
    const extensions: Record<string, string> = { tenant: 'acme' };
    const event = createEvent({ ...required, extensions });
    extensions['tenant'] = 'changed';
    expect(event.extensions).toEqual({ tenant: 'acme' });
    expect(createEvent({ ...required, extensions: {} })).not.toHaveProperty('extensions');
  });

  it('throws CloudEventValidationError with every issue for invalid attributes', () => {
    let caught: unknown;
    try {
      createEvent({ type: '', source: 'not a uri', subject: '', extensions: { Tenant: 'x' } });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(CloudEventValidationError);
    expect(isEventsError(caught, EventsErrorCode.INVALID_EVENT)).toBe(true);
    const error = caught as CloudEventValidationError;
    expect(error.code).toBe('INVALID_EVENT');
    expect(error.index).toBeUndefined();
    expect(error.issues.map((issue) => [issue.attribute, issue.rule])).toEqual([
      ['source', 'uri-reference'],
      ['type', 'non-empty'],
      ['subject', 'non-empty'],
      ['Tenant', 'attribute-name'],
    ]);
    expect(error.message).toMatch(
      /^invalid CloudEvent: source must be a URI-reference.*\(uri-reference\); type /,
    );
  });

  it('checks an id it is given, as it does every other attribute, and one it makes passes', () => {
    const issuesOf = (id: unknown): [string, string][] => {
      try {
        createEvent({ ...required, id } as CreateEventInput);
        return [];
      } catch (error) {
        return (error as CloudEventValidationError).issues.map((issue) => [issue.attribute, issue.rule]);
      }
    };
    expect(issuesOf('')).toEqual([['id', 'non-empty']]);
    expect(issuesOf('tab\there')).toEqual([['id', 'forbidden-character']]);
    expect(issuesOf(42)).toEqual([['id', 'value-type']]);
    expect(issuesOf('x'.repeat(70_000))).toEqual([['id', 'too-long']]);
    expect(validateEvent(createEvent(required))).toEqual([]);
  });

  it('applies custom limits', () => {
    expect(() => createEvent({ ...required, data: 'hello' }, { dataBytesMax: 4 })).toThrow(
      CloudEventValidationError,
    );
  });

  it('throws TypeError for data that cannot become bytes', () => {
    expect(() => createEvent({ ...required, data: () => 1 })).toThrow(TypeError);
    expect(() => createEvent({ ...required, data: Symbol('x') })).toThrow(TypeError);
    expect(() => createEvent({ ...required, data: 10n })).toThrow(TypeError);
    expect(() => createEvent({ ...required, data: new Float32Array(2) })).toThrow(/Uint8Array/);
    expect(() => createEvent({ ...required, data: new ArrayBuffer(2) })).toThrow(/Uint8Array/);
    const cycle: Record<string, unknown> = {};
    cycle['self'] = cycle;
    expect(() => createEvent({ ...required, data: cycle })).toThrow(TypeError);
  });

  it('makes distinct version-4 UUIDs across several draws of randomness, with getRandomValues alone', () => {
    // Only getRandomValues: randomUUID is missing in insecure browser contexts, and is not used.
    const { getRandomValues } = globalThis.crypto;
    vi.stubGlobal('crypto', { getRandomValues: getRandomValues.bind(globalThis.crypto) });
    const ids = Array.from({ length: 10_000 }, () => createEvent(required).id);
    expect(ids.every((id) => UUID.test(id))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('events > event > reading data', () => {
  it('returns undefined when there is no data', () => {
    const event = createEvent(required);
    expect(dataAsText(event)).toBeUndefined();
    expect(dataAsJson(event)).toBeUndefined();
  });

  it('throws TypeError for bytes that are not UTF-8 and SyntaxError for text that is not JSON', () => {
    expect(() => dataAsText(createEvent({ ...required, data: new Uint8Array([0xc0, 0xa0]) }))).toThrow(
      TypeError,
    );
    expect(() => dataAsJson(createEvent({ ...required, data: 'not json' }))).toThrow(SyntaxError);
  });
});

describe('events > event > causedBy', () => {
  it('chains correlation and causation ids the way the Correlation extension describes', () => {
    const order = createEvent({ ...required, id: 'order-123', extensions: { correlationid: 'txn-abc-123' } });
    const payment = createEvent({
      type: 'com.example.payment.processed',
      source: 'https://example.com/payments',
      id: 'payment-789',
      extensions: causedBy(order),
    });
    expect(payment.extensions).toEqual({ correlationid: 'txn-abc-123', causationid: 'order-123' });
    const receipt = createEvent({ ...required, extensions: { ...causedBy(payment) } });
    expect(receipt.extensions).toEqual({ correlationid: 'txn-abc-123', causationid: 'payment-789' });
  });

  it('starts a correlation at the cause when it has none, and passes the traceparent on', () => {
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const start = createEvent({ ...required, id: 'first', extensions: { traceparent } });
    expect(causedBy(start)).toEqual({ correlationid: 'first', causationid: 'first', traceparent });
  });
});
