/**
 * Cross-check against the CloudEvents JavaScript SDK (`cloudevents`, pinned in devDependencies):
 * what it sends over HTTP we read, and what we send it reads. The SDK neither percent-encodes nor
 * percent-decodes header values (it predates HTTP binding 1.0.2), so values it sends stay within
 * printable ASCII plus space, and values we send it have no character we would encode. It also
 * rewrites `time` in UTC, so offsets are tested elsewhere.
 */
import { CloudEvent as SdkEvent, HTTP } from 'cloudevents';
import type { Message } from 'cloudevents';
import { describe, expect, it } from 'vitest';
import {
  createEvent,
  dataAsJson,
  dataAsText,
  formatHttpBatch,
  formatHttpBinary,
  formatHttpStructured,
  parseHttpRequest,
} from '../../src/events/index.js';
import type { CloudEvent, FormattedHttpMessage, HttpMessage } from '../../src/events/index.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** An SDK message as our binding takes it: string headers, body bytes. */
function fromSdk(message: Message): HttpMessage {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers)) headers[name.toLowerCase()] = String(value);
  const { body } = message;
  return { headers, body: body instanceof Uint8Array ? body : encoder.encode(String(body)) };
}

/** Our message as the SDK takes it: bodies it parses as text are strings. */
function toSdk(message: FormattedHttpMessage, bodyAsText = true): Message {
  return { headers: { ...message.headers }, body: bodyAsText ? decoder.decode(message.body) : message.body };
}

function parseOne(message: HttpMessage): CloudEvent {
  const { events } = parseHttpRequest(message);
  expect(events).toHaveLength(1);
  return events[0]!;
}

const order = {
  type: 'com.example.order.placed',
  source: 'https://example.com/orders',
  id: 'order-17',
  subject: 'order 17',
  time: '2026-01-02T03:04:05.123Z',
} as const;

describe('events > sdk-interop > the SDK sends, we read', () => {
  const sdkJson = new SdkEvent({
    ...order,
    datacontenttype: 'application/json',
    data: { amount: 5 },
    tenant: 'acme',
  });

  it('reads an SDK binary-mode event with JSON data', () => {
    const event = parseOne(fromSdk(HTTP.binary(sdkJson)));
    expect(event).toMatchObject({ ...order, specversion: '1.0', datacontenttype: 'application/json' });
    expect(event.extensions).toEqual({ tenant: 'acme' });
    expect(dataAsJson(event)).toEqual({ amount: 5 });
  });

  it('reads an SDK structured-mode event with JSON data', () => {
    const event = parseOne(fromSdk(HTTP.structured(sdkJson)));
    expect(event).toMatchObject({
      ...order,
      datacontenttype: 'application/json',
      extensions: { tenant: 'acme' },
    });
    expect(dataAsJson(event)).toEqual({ amount: 5 });
  });

  it('reads SDK binary data in both modes (raw body, data_base64)', () => {
    const sdkBinary = new SdkEvent({
      ...order,
      datacontenttype: 'application/octet-stream',
      data: new Uint8Array([0, 1, 255]),
    });
    expect(parseOne(fromSdk(HTTP.binary(sdkBinary))).data).toEqual(new Uint8Array([0, 1, 255]));
    expect(parseOne(fromSdk(HTTP.structured(sdkBinary))).data).toEqual(new Uint8Array([0, 1, 255]));
  });

  it('reads SDK text data in both modes', () => {
    const sdkText = new SdkEvent({ ...order, datacontenttype: 'text/plain', data: 'hello' });
    expect(dataAsText(parseOne(fromSdk(HTTP.binary(sdkText))))).toBe('hello');
    expect(dataAsText(parseOne(fromSdk(HTTP.structured(sdkText))))).toBe('hello');
  });

  it('reads SDK Integer extensions as Integers in structured mode, as Strings in binary mode', () => {
    const sdkEvent = new SdkEvent({ ...order, attempt: 2 });
    expect(parseOne(fromSdk(HTTP.structured(sdkEvent))).extensions).toEqual({ attempt: 2 });
    expect(parseOne(fromSdk(HTTP.binary(sdkEvent))).extensions).toEqual({ attempt: '2' });
  });
});

describe('events > sdk-interop > we send, the SDK reads', () => {
  const ours = createEvent({
    ...order,
    subject: 'order/17',
    data: { amount: 5 },
    extensions: { tenant: 'acme', attempt: 2 },
  });

  it('has our binary-mode event read by the SDK', () => {
    const sdkEvent = HTTP.toEvent(toSdk(formatHttpBinary(ours))) as SdkEvent;
    expect(sdkEvent).toMatchObject({
      ...order,
      subject: 'order/17',
      specversion: '1.0',
      datacontenttype: 'application/json',
      tenant: 'acme',
    });
    expect(sdkEvent.data).toEqual({ amount: 5 });
    expect(String(sdkEvent['attempt'])).toBe('2');
  });

  it('has our structured-mode event read by the SDK', () => {
    const sdkEvent = HTTP.toEvent(toSdk(formatHttpStructured(ours))) as SdkEvent;
    expect(sdkEvent).toMatchObject({
      ...order,
      subject: 'order/17',
      datacontenttype: 'application/json',
      attempt: 2,
    });
    expect(sdkEvent.data).toEqual({ amount: 5 });
  });

  it('has our binary data read by the SDK in binary mode', () => {
    const bytes = createEvent({ ...order, data: new Uint8Array([0, 1, 255]) });
    const sdkEvent = HTTP.toEvent(toSdk(formatHttpBinary(bytes), false)) as SdkEvent;
    expect(sdkEvent.datacontenttype).toBe('application/octet-stream');
    expect(new Uint8Array(sdkEvent.data as unknown as Uint8Array)).toEqual(new Uint8Array([0, 1, 255]));
  });

  it('has our batch read by the SDK', () => {
    const second = createEvent({ ...order, id: 'order-18', data: 'text' });
    const sdkEvents = HTTP.toEvent(toSdk(formatHttpBatch([ours, second]))) as SdkEvent[];
    expect(sdkEvents.map((event) => [event.id, event.data])).toEqual([
      ['order-17', { amount: 5 }],
      ['order-18', 'text'],
    ]);
  });
});
