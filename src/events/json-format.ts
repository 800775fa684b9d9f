/**
 * CloudEvents JSON event format 1.0.2 (`application/cloudevents+json`) and JSON batch format
 * (`application/cloudevents-batch+json`).
 *
 * Reading `data`: `data_base64` is decoded to bytes; `data` under a JSON content type (or none)
 * becomes the UTF-8 bytes of its JSON text exactly as written; `data` under any other type must
 * be a string and becomes its UTF-8 bytes (null: no data). An absent `datacontenttype` with
 * `data` becomes an explicit `application/json`, which §3.1.2 asks for when re-encoding and which
 * keeps the bytes self-describing. Writing `data`: JSON text stays JSON, UTF-8 text becomes a
 * string, anything else (or bytes that do not parse as their type claims) goes to `data_base64`.
 */
import { decodeBase64, encodeBase64 } from './base64.js';
import { CloudEventValidationError, MalformedBodyError, TooManyEventsError } from './errors.js';
import type { InvalidEvent } from './errors.js';
import { findMember, findMemberOfElements, skipWhitespace } from './json-span.js';
import type { Span } from './json-span.js';
import { declaresJson, declaresUtf8Text } from './media-type.js';
import { ValidationRule } from './types.js';
import type { CloudEvent, ParseOptions, ValidationIssue } from './types.js';
import { decodeUtf8, utf8Encoder } from './utf8.js';
import { DEFAULT_LIMITS, placeAttribute, validateEvent } from './validate.js';

const APPLICATION_JSON = 'application/json';

/**
 * One structured-mode JSON event. Throws `MalformedBodyError` if the body is not UTF-8 JSON
 * holding an object, `CloudEventValidationError` if the object is not a valid event.
 */
export function parseJsonEvent(body: Uint8Array | string, options: ParseOptions = {}): CloudEvent {
  const source = new JsonSource(bodyText(body), false);
  const value = source.parse();
  if (!isJsonObject(value)) {
    throw new MalformedBodyError(`a structured-mode event must be a JSON object, not ${jsonType(value)}`);
  }
  const result = eventFromJson(value, source, 0, options);
  if (Array.isArray(result)) throw new CloudEventValidationError([{ index: 0, issues: result }]);
  return result;
}

/**
 * A JSON batch: every event, or nothing. Throws `MalformedBodyError` if the body is not a JSON
 * array of objects, `TooManyEventsError` past `batchEventCountMax`, and one
 * `CloudEventValidationError` listing every invalid event with its index. An empty array is a
 * valid batch (JSON batch format §4.3) and gives no events.
 */
export function parseJsonBatch(body: Uint8Array | string, options: ParseOptions = {}): CloudEvent[] {
  const source = new JsonSource(bodyText(body), true);
  const value = source.parse();
  if (!Array.isArray(value))
    throw new MalformedBodyError(`a batch must be a JSON array of events, not ${jsonType(value)}`);
  const countMax = options.batchEventCountMax ?? DEFAULT_LIMITS.batchEventCountMax;
  if (value.length > countMax) throw new TooManyEventsError(value.length, countMax);
  const events: CloudEvent[] = [];
  let invalidEvents: InvalidEvent[] | undefined;
  for (let index = 0; index < value.length; index++) {
    const element: unknown = value[index];
    if (!isJsonObject(element)) {
      throw new MalformedBodyError(`batch element ${index} must be a JSON object, not ${jsonType(element)}`);
    }
    const result = eventFromJson(element, source, index, options);
    if (Array.isArray(result)) (invalidEvents ??= []).push({ index, issues: result });
    else events.push(result);
  }
  if (invalidEvents !== undefined) throw new CloudEventValidationError(invalidEvents, true);
  return events;
}

/** The event in the JSON format. Trusts the event to be valid (as every event in Eddy is). */
export function formatJsonEvent(event: CloudEvent): string {
  const object: Record<string, unknown> = {
    specversion: event.specversion,
    id: event.id,
    source: event.source,
    type: event.type,
  };
  if (event.subject !== undefined) object['subject'] = event.subject;
  if (event.time !== undefined) object['time'] = event.time;
  if (event.datacontenttype !== undefined) object['datacontenttype'] = event.datacontenttype;
  if (event.dataschema !== undefined) object['dataschema'] = event.dataschema;
  const { extensions, data, datacontenttype } = event;
  if (extensions !== undefined) {
    for (const name in extensions) {
      const value = extensions[name];
      // JSON has no binary type: Binary goes as its canonical string, base64 (§2.2).
      object[name] = value instanceof Uint8Array ? encodeBase64(value) : value;
    }
  }
  if (data === undefined) return JSON.stringify(object);
  if (declaresJson(datacontenttype)) {
    const json = jsonText(data);
    if (json !== undefined) {
      // Spliced, not re-serialized: the producer's JSON text is kept byte for byte.
      const head = JSON.stringify(object);
      return `${head.slice(0, -1)},"data":${json}}`;
    }
  } else if (datacontenttype !== undefined && declaresUtf8Text(datacontenttype)) {
    const text = decodeUtf8(data);
    if (text !== undefined) {
      object['data'] = text;
      return JSON.stringify(object);
    }
  }
  object['data_base64'] = encodeBase64(data);
  return JSON.stringify(object);
}

/** The events as a JSON batch. */
export function formatJsonBatch(events: readonly CloudEvent[]): string {
  return `[${events.map(formatJsonEvent).join(',')}]`;
}

/** The parsed body plus, found only when needed, where each event's `data` is in the text. */
class JsonSource {
  readonly text: string;
  readonly #isBatch: boolean;
  #spans: (Span | undefined)[] | undefined;

  constructor(text: string, isBatch: boolean) {
    this.text = text;
    this.#isBatch = isBatch;
  }

  parse(): unknown {
    try {
      return JSON.parse(this.text);
    } catch (error) {
      throw new MalformedBodyError(`the body is not JSON: ${(error as Error).message}`, { cause: error });
    }
  }

  /** The JSON text of the `data` member of event `index` (0 outside a batch). */
  dataText(index: number): string {
    const start = skipWhitespace(this.text, 0);
    const span = this.#isBatch
      ? (this.#spans ??= findMemberOfElements(this.text, start, 'data'))[index]
      : findMember(this.text, start, 'data').span;
    if (span === undefined) throw new Error(`json-format: no data member found in event ${index}`);
    return this.text.slice(span.start, span.end);
  }
}

/** A valid event, or what is wrong with it. */
function eventFromJson(
  object: Readonly<Record<string, unknown>>,
  source: JsonSource,
  index: number,
  options: ParseOptions,
): CloudEvent | ValidationIssue[] {
  const draft: Record<string, unknown> = {};
  const issues: ValidationIssue[] = [];
  let extensions: Record<string, unknown> | undefined;
  for (const name in object) {
    const value = object[name];
    // §2.2: null means unset. The data members are read below.
    if (value === null || name === 'data' || name === 'data_base64') continue;
    extensions = placeAttribute(draft, extensions, name, value, issues);
  }
  if (extensions !== undefined) draft['extensions'] = extensions;
  readData(object, draft, issues, source, index);
  const modelIssues = validateEvent(draft, options);
  if (issues.length === 0 && modelIssues.length === 0) return draft as unknown as CloudEvent;
  issues.push(...modelIssues);
  return issues;
}

function readData(
  object: Readonly<Record<string, unknown>>,
  draft: Record<string, unknown>,
  issues: ValidationIssue[],
  source: JsonSource,
  index: number,
): void {
  const hasData = Object.hasOwn(object, 'data');
  const base64 = object['data_base64'];
  if (base64 !== undefined && base64 !== null) {
    if (hasData) {
      issues.push({
        attribute: 'data_base64',
        rule: ValidationRule.MUTUALLY_EXCLUSIVE,
        message: 'cannot be present together with data',
      });
    } else if (typeof base64 !== 'string') {
      issues.push({
        attribute: 'data_base64',
        rule: ValidationRule.VALUE_TYPE,
        message: `must be a base64 string, not ${jsonType(base64)}`,
      });
    } else {
      const bytes = decodeBase64(base64);
      if (bytes === undefined) {
        issues.push({
          attribute: 'data_base64',
          rule: ValidationRule.BASE64,
          message: 'is not base64 (RFC 4648: standard alphabet, padded, no whitespace)',
        });
      } else {
        draft['data'] = bytes;
      }
    }
    return;
  }
  if (!hasData) return;
  const datacontenttype = draft['datacontenttype'];
  if (
    datacontenttype === undefined ||
    (typeof datacontenttype === 'string' && declaresJson(datacontenttype))
  ) {
    draft['data'] = utf8Encoder.encode(source.dataText(index));
    if (datacontenttype === undefined) draft['datacontenttype'] = APPLICATION_JSON;
    return;
  }
  const data = object['data'];
  if (typeof data === 'string') {
    draft['data'] = utf8Encoder.encode(data);
  } else if (data !== null) {
    issues.push({
      attribute: 'data',
      rule: ValidationRule.VALUE_TYPE,
      message: `must be a string when datacontenttype is not JSON, not ${jsonType(data)}`,
    });
  }
}

/** The data as JSON text, or undefined when the bytes are not UTF-8 JSON. */
function jsonText(data: Uint8Array): string | undefined {
  const text = decodeUtf8(data);
  if (text === undefined) return undefined;
  try {
    JSON.parse(text);
    return text;
  } catch {
    return undefined;
  }
}

function bodyText(body: Uint8Array | string): string {
  if (typeof body === 'string') return body;
  const text = decodeUtf8(body);
  if (text === undefined) throw new MalformedBodyError('the body is not valid UTF-8');
  return text;
}

function isJsonObject(value: unknown): value is Readonly<Record<string, unknown>> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
