/** Building events in application code, and reading their data back. */
import { CloudEventValidationError } from './errors.js';
import type { CloudEvent, ExtensionValue, ValidationLimits } from './types.js';
import { decodeUtf8, utf8Encoder } from './utf8.js';
import { createdEventIssues } from './validate.js';

/** What `createEvent` needs; everything but `type` and `source` has a default. */
export interface CreateEventInput {
  readonly type: string;
  readonly source: string;
  /** Default: a random UUID. */
  readonly id?: string;
  /**
   * An RFC 3339 string (kept exactly as given) or a `Date` (written in UTC with milliseconds).
   * Default: now. `null` leaves the event without a time.
   */
  readonly time?: string | Date | null;
  readonly subject?: string;
  /** Default depends on `data`: see there. */
  readonly datacontenttype?: string;
  readonly dataschema?: string;
  readonly extensions?: Readonly<Record<string, ExtensionValue>>;
  /**
   * - `Uint8Array`: the bytes as they are (not copied); default type `application/octet-stream`.
   * - `string`: its UTF-8 bytes; default type `text/plain;charset=utf-8`. With a JSON content
   *   type the string must already be JSON text; pass `JSON.stringify(value)` to send a JSON string.
   * - anything else: serialized with `JSON.stringify` to UTF-8; default type `application/json`.
   */
  readonly data?: unknown;
}

let nowMs = Number.NaN;
let nowIso = '';

/** The current time as RFC 3339 in UTC, formatted once per millisecond however many events share it. */
function now(): string {
  const ms = Date.now();
  if (ms !== nowMs) {
    nowMs = ms;
    nowIso = new Date(ms).toISOString();
  }
  return nowIso;
}

const OCTET_STREAM = 'application/octet-stream';
const TEXT_PLAIN = 'text/plain;charset=utf-8';
const APPLICATION_JSON = 'application/json';

/**
 * A new, valid CloudEvent. Throws `CloudEventValidationError` when an attribute breaks a rule,
 * `TypeError` when `data` cannot become bytes (a function, a symbol, a cycle, a BigInt, a typed
 * array other than `Uint8Array`), `RangeError` for an invalid `Date`.
 */
export function createEvent(input: CreateEventInput, limits?: ValidationLimits): CloudEvent {
  const event: Record<string, unknown> = {
    specversion: '1.0',
    id: input.id ?? newId(),
    source: input.source,
    type: input.type,
  };
  if (input.subject !== undefined) event['subject'] = input.subject;
  const time = input.time === undefined ? now() : input.time;
  if (typeof time === 'string') {
    event['time'] = time;
  } else if (time instanceof Date) {
    if (Number.isNaN(time.getTime())) throw new RangeError('createEvent: time is an invalid Date');
    event['time'] = time.toISOString();
  } else if (time !== null) {
    event['time'] = time; // not a string or a Date: validation reports it
  }
  let datacontenttype = input.datacontenttype;
  const { data } = input;
  if (data instanceof Uint8Array) {
    event['data'] = data;
    datacontenttype ??= OCTET_STREAM;
  } else if (typeof data === 'string') {
    event['data'] = utf8Encoder.encode(data);
    datacontenttype ??= TEXT_PLAIN;
  } else if (data !== undefined) {
    event['data'] = utf8Encoder.encode(toJson(data));
    datacontenttype ??= APPLICATION_JSON;
  }
  if (datacontenttype !== undefined) event['datacontenttype'] = datacontenttype;
  if (input.dataschema !== undefined) event['dataschema'] = input.dataschema;
  if (input.extensions !== undefined && hasOwnKeys(input.extensions)) {
    // A copy, so later changes to the caller's object cannot change a validated event.
    event['extensions'] = { ...input.extensions };
  }
  const issues = createdEventIssues(event, limits ?? {}, input.id === undefined);
  if (issues.length > 0) throw new CloudEventValidationError([{ index: 0, issues }]);
  return event as unknown as CloudEvent;
}

/** `data` as text (UTF-8), or undefined when the event has none. Throws `TypeError` if not UTF-8. */
export function dataAsText(event: CloudEvent): string | undefined {
  if (event.data === undefined) return undefined;
  const text = decodeUtf8(event.data);
  if (text === undefined) throw new TypeError(`data of event ${event.id} is not UTF-8 text`);
  return text;
}

/**
 * `data` parsed as JSON, or undefined when the event has none. Throws `SyntaxError` if it is not
 * JSON; the content type is not consulted, so call it when you know the data is JSON.
 */
export function dataAsJson(event: CloudEvent): unknown {
  const text = dataAsText(event);
  return text === undefined ? undefined : JSON.parse(text);
}

function toJson(data: unknown): string {
  if (ArrayBuffer.isView(data) || data instanceof ArrayBuffer) {
    throw new TypeError('createEvent: binary data must be a Uint8Array');
  }
  const json: string | undefined = JSON.stringify(data);
  if (json === undefined)
    throw new TypeError(`createEvent: data of type ${typeof data} cannot be serialized as JSON`);
  return json;
}

function hasOwnKeys(object: object): boolean {
  for (const key in object) if (Object.hasOwn(object, key)) return true;
  return false;
}

/** Random bytes for ids, drawn 64 KiB at a time (the most one `getRandomValues` call gives). */
const idBytes = new Uint8Array(65_536);
let idBytesUsed = idBytes.length;
const HEX_DIGITS = Array.from('0123456789abcdef', (digit) => digit.charCodeAt(0));
/** Where each of the 16 bytes' two hex digits go in the 36-character 8-4-4-4-12 form. */
const UUID_DIGIT_AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
const HYPHEN = 0x2d;
/** The id's characters, written again for every id: only the string made from them is new. */
const idChars = new Uint8Array(36).fill(HYPHEN);

/**
 * A random (version 4) UUID. `crypto.randomUUID` would do, but in Node it draws 2 KiB of
 * randomness per 128 UUIDs and, through `globalThis.crypto`, checks its receiver on every call:
 * together about a tenth of the SDK's CPU per published event. Drawing 4,096 UUIDs' worth at a
 * time makes the draw negligible; `getRandomValues` is there in browsers and Node alike. The
 * string is made in one step from its 36 character codes: joining 20 pieces with `+` made 20
 * intermediate strings, 630 bytes of garbage per id (measured with V8's sampling heap profiler).
 */
function newId(): string {
  if (idBytesUsed === idBytes.length) {
    globalThis.crypto.getRandomValues(idBytes);
    idBytesUsed = 0;
  }
  for (let k = 0; k < 16; k++) {
    let byte = idBytes[idBytesUsed + k] as number;
    // Byte 6 carries the version (4), byte 8 the RFC 4122 variant.
    if (k === 6) byte = (byte & 0x0f) | 0x40;
    else if (k === 8) byte = (byte & 0x3f) | 0x80;
    const at = UUID_DIGIT_AT[k] as number;
    idChars[at] = HEX_DIGITS[byte >> 4] as number;
    idChars[at + 1] = HEX_DIGITS[byte & 0x0f] as number;
  }
  idBytesUsed += 16;
  const c = idChars;
  // 36 arguments rather than `apply(null, idChars)`, which takes twice as long; every index is in range.
  /* eslint-disable @typescript-eslint/no-non-null-assertion */
  // prettier-ignore
  return String.fromCharCode(
    c[0]!, c[1]!, c[2]!, c[3]!, c[4]!, c[5]!, c[6]!, c[7]!, c[8]!, c[9]!, c[10]!, c[11]!,
    c[12]!, c[13]!, c[14]!, c[15]!, c[16]!, c[17]!, c[18]!, c[19]!, c[20]!, c[21]!, c[22]!, c[23]!,
    c[24]!, c[25]!, c[26]!, c[27]!, c[28]!, c[29]!, c[30]!, c[31]!, c[32]!, c[33]!, c[34]!, c[35]!,
  );
  /* eslint-enable @typescript-eslint/no-non-null-assertion */
}
