/**
 * CloudEvents HTTP protocol binding 1.0.2, for requests and responses alike, independent of the
 * server library: a message is lower-cased headers plus body bytes.
 *
 * The mode comes from Content-Type (§3): `application/cloudevents-batch…` is batch,
 * `application/cloudevents…` is structured, anything else is binary. Only the JSON formats are
 * read, with no charset or `charset=utf-8`; other formats (`+avro`) and charsets are refused
 * rather than forwarded blindly. Binary mode needs at least one `ce-` header; without one the
 * message is not a CloudEvent at all, which is reported as an unsupported content type.
 */
import { CloudEventValidationError, UnsupportedContentTypeError } from './errors.js';
import { encodeBase64 } from './base64.js';
import { decodeHeaderValue, encodeHeaderValue } from './header-value.js';
import { formatJsonBatch, formatJsonEvent, parseJsonBatch, parseJsonEvent } from './json-format.js';
import { charsetOf, essenceOf, isUtf8Charset } from './media-type.js';
import { ContentMode, ValidationRule } from './types.js';
import type {
  CloudEvent,
  ExtensionValue,
  FormattedHttpMessage,
  HttpMessage,
  ParseOptions,
  ParsedHttpMessage,
  ValidationIssue,
} from './types.js';
import { utf8Encoder } from './utf8.js';
import { extensionNameIssue, placeAttribute, validateEvent } from './validate.js';

const STRUCTURED_JSON = 'application/cloudevents+json';
const BATCH_JSON = 'application/cloudevents-batch+json';
const STRUCTURED_PREFIX = /^ *application\/cloudevents/i;
const BATCH_PREFIX = /^ *application\/cloudevents-batch/i;
const HEADER_PREFIX = 'ce-';
const EMPTY = new Uint8Array(0);

/**
 * The events an HTTP request (or response) carries, all valid, or a typed error:
 * `UnsupportedContentTypeError` (415), `MalformedBodyError` (400), `TooManyEventsError`,
 * `CloudEventValidationError` (400; for a batch, every invalid event with its index — a batch
 * is accepted whole or not at all). In binary mode the event's `data` is a view of `body`, not
 * a copy; the caller keeps `body` alive and unchanged.
 */
export function parseHttpRequest(message: HttpMessage, options: ParseOptions = {}): ParsedHttpMessage {
  const contentType = message.headers['content-type'];
  if (contentType !== undefined && BATCH_PREFIX.test(contentType)) {
    checkJsonFormat(contentType, BATCH_JSON);
    return { mode: ContentMode.BATCH, events: parseJsonBatch(message.body, options) };
  }
  if (contentType !== undefined && STRUCTURED_PREFIX.test(contentType)) {
    checkJsonFormat(contentType, STRUCTURED_JSON);
    return { mode: ContentMode.STRUCTURED, events: [parseJsonEvent(message.body, options)] };
  }
  return { mode: ContentMode.BINARY, events: [parseBinary(message, contentType, options)] };
}

function checkJsonFormat(contentType: string, expected: string): void {
  if (essenceOf(contentType) !== expected) {
    throw new UnsupportedContentTypeError(
      contentType,
      `event format ${essenceOf(contentType)} is not supported; use ${expected}`,
    );
  }
  const charset = charsetOf(contentType);
  if (charset !== undefined && !isUtf8Charset(charset)) {
    throw new UnsupportedContentTypeError(contentType, `charset ${charset} is not supported; JSON is UTF-8`);
  }
}

function parseBinary(
  message: HttpMessage,
  contentType: string | undefined,
  options: ParseOptions,
): CloudEvent {
  const { headers, body } = message;
  const draft: Record<string, unknown> = {};
  const issues: ValidationIssue[] = [];
  let extensions: Record<string, unknown> | undefined;
  let sawHeader = false;
  for (const header in headers) {
    const raw = headers[header];
    if (!header.startsWith(HEADER_PREFIX) || raw === undefined) continue;
    sawHeader = true;
    const name = header.slice(HEADER_PREFIX.length);
    if (name === 'datacontenttype') {
      // §3.1.1: binary mode carries it as Content-Type only.
      issues.push({
        attribute: name,
        rule: ValidationRule.MUTUALLY_EXCLUSIVE,
        message: 'must be sent as Content-Type in binary mode, never as a ce-datacontenttype header',
      });
      continue;
    }
    let value: string;
    try {
      value = decodeHeaderValue(raw);
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      issues.push({ attribute: name, rule: ValidationRule.HEADER_ENCODING, message: error.message });
      continue;
    }
    extensions = placeAttribute(draft, extensions, name, value, issues);
  }
  if (!sawHeader) {
    throw new UnsupportedContentTypeError(
      contentType,
      `${contentType === undefined ? 'no Content-Type' : `Content-Type ${contentType}`} is not a CloudEvents format, ` +
        `and there are no ce- headers for binary mode; use ${STRUCTURED_JSON}, ${BATCH_JSON} or ce- headers`,
    );
  }
  if (extensions !== undefined) draft['extensions'] = extensions;
  if (contentType !== undefined) draft['datacontenttype'] = contentType;
  // HTTP cannot tell an empty body from none; an empty body is read as no data.
  if (body.byteLength > 0) draft['data'] = body;
  issues.push(...validateEvent(draft, options));
  if (issues.length > 0) throw new CloudEventValidationError([{ index: 0, issues }]);
  return draft as unknown as CloudEvent;
}

/**
 * The event in binary mode: attributes as percent-encoded `ce-` headers, `datacontenttype` as
 * `content-type`, `data` as the body. Trusts the event to be valid, except that extension names
 * are checked (they become header names); a bad one throws `TypeError`.
 */
export function formatHttpBinary(event: CloudEvent): FormattedHttpMessage {
  const headers: Record<string, string> = {
    'ce-specversion': event.specversion,
    'ce-id': encodeHeaderValue(event.id),
    'ce-source': encodeHeaderValue(event.source),
    'ce-type': encodeHeaderValue(event.type),
  };
  if (event.subject !== undefined) headers['ce-subject'] = encodeHeaderValue(event.subject);
  if (event.time !== undefined) headers['ce-time'] = encodeHeaderValue(event.time);
  if (event.dataschema !== undefined) headers['ce-dataschema'] = encodeHeaderValue(event.dataschema);
  if (event.datacontenttype !== undefined) headers['content-type'] = event.datacontenttype;
  const { extensions } = event;
  if (extensions !== undefined) {
    for (const name in extensions) {
      if (extensionNameIssue(name) !== undefined) {
        throw new TypeError(`extension name ${JSON.stringify(name)} cannot become an HTTP header`);
      }
      const value = extensions[name];
      if (value !== undefined) headers[HEADER_PREFIX + name] = encodeHeaderValue(canonicalString(value));
    }
  }
  return { headers, body: event.data ?? EMPTY };
}

/** The event in structured mode (`application/cloudevents+json; charset=utf-8`). */
export function formatHttpStructured(event: CloudEvent): FormattedHttpMessage {
  return {
    headers: { 'content-type': `${STRUCTURED_JSON}; charset=utf-8` },
    body: utf8Encoder.encode(formatJsonEvent(event)),
  };
}

/** The events in batch mode (`application/cloudevents-batch+json; charset=utf-8`). */
export function formatHttpBatch(events: readonly CloudEvent[]): FormattedHttpMessage {
  return {
    headers: { 'content-type': `${BATCH_JSON}; charset=utf-8` },
    body: utf8Encoder.encode(formatJsonBatch(events)),
  };
}

/** The spec's canonical string encoding of a value (Type System section). */
function canonicalString(value: ExtensionValue): string {
  if (typeof value === 'string') return value;
  if (value instanceof Uint8Array) return encodeBase64(value);
  return String(value);
}
