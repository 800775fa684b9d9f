/**
 * The CloudEvents rules, checked over an event block's bytes: the broker's
 * publish path runs this on every event, so it decodes no string it can avoid
 * and allocates nothing per event. UTF-8 and the String character rules are
 * checked on the bytes; an attribute whose bytes equal the same attribute of
 * the previous event (a batch's events mostly share `source`, `type`,
 * `datacontenttype`, `dataschema`) is not checked again; the syntax rules
 * (URI-reference, RFC 3339, media type, absolute URI) decode only the
 * attributes that differ.
 *
 * The verdict matches `validateEvent` on the decoded event, and the issues of
 * a rejected event come from it; it is also stricter in two ways the decoded
 * model cannot show: attribute bytes must be valid UTF-8 (the FlatBuffers
 * runtime would turn bad bytes into U+FFFD), and extension names must be
 * sorted and unique, as the schema says.
 *
 * While it reads the extensions it also notes the latest `deliverat` (scheduled
 * delivery, which must be an RFC 3339 Timestamp) of the block, so the publish
 * path learns a batch's delivery time without a second pass.
 */
import {
  decodeEventBatch,
  EventBlockReader,
  EventSlot,
  ExtensionSlot,
  extensionKinds,
} from '../protocol/index.js';
import { Extension, isTraceparent } from './extensions.js';
import { isMediaType } from './media-type.js';
import { timestampMs, timestampProblem } from './timestamp.js';
import { ValidationRule, type ValidationIssue, type ValidationLimits } from './types.js';
import { isAbsoluteUri, isUriReference } from './uri.js';
import { DEFAULT_LIMITS, isContextAttribute, validateEvent } from './validate.js';
import { fromEventFields } from './wire.js';

// Kinds whose value is text on the wire.
const STRING_KINDS: ReadonlySet<number> = new Set(
  (['string', 'uri', 'uri-reference', 'timestamp'] as const).map((kind) => extensionKinds.indexOf(kind)),
);
const BINARY_KIND = extensionKinds.indexOf('binary');
const KIND_COUNT = extensionKinds.length;
const NON_EMPTY_EXTENSIONS = ['correlationid', 'causationid', 'traceparent'];
/** Made once: an arrow written in the per-event check would be a new function object per event. */
const isTimestamp = (value: string): boolean => timestampProblem(value) === undefined;

const decoder = new TextDecoder('utf-8', { fatal: true });

/** Scan result of a String's bytes. */
const Text = { bad: -1, ascii: 0, unicode: 1 } as const;

/**
 * Whether bytes[start, end) is well-formed UTF-8 holding no character the spec
 * forbids in a String: C0 and C1 controls, DEL, surrogates, noncharacters.
 */
function scanText(bytes: Uint8Array, start: number, end: number): number {
  let result: number = Text.ascii;
  for (let i = start; i < end;) {
    let b = bytes[i] as number;
    // Most attribute values are printable ASCII (ids, types, sources): step over a run of it first.
    while (b >= 0x20 && b < 0x7f) {
      if (++i === end) return result;
      b = bytes[i] as number;
    }
    if (b < 0x80) return Text.bad; // a C0 control or DEL
    result = Text.unicode;
    const c1 = bytes[i + 1] ?? 0;
    if ((c1 & 0xc0) !== 0x80 || i + 1 >= end) return Text.bad;
    if (b < 0xc2) return Text.bad;
    if (b < 0xe0) {
      if (b === 0xc2 && c1 <= 0x9f) return Text.bad; // U+0080–U+009F
      i += 2;
      continue;
    }
    const c2 = bytes[i + 2] ?? 0;
    if ((c2 & 0xc0) !== 0x80 || i + 2 >= end) return Text.bad;
    if (b < 0xf0) {
      if ((b === 0xe0 && c1 < 0xa0) || (b === 0xed && c1 > 0x9f)) return Text.bad; // overlong, surrogates
      const cp = ((b & 0x0f) << 12) | ((c1 & 0x3f) << 6) | (c2 & 0x3f);
      if ((cp >= 0xfdd0 && cp <= 0xfdef) || cp >= 0xfffe) return Text.bad;
      i += 3;
      continue;
    }
    const c3 = bytes[i + 3] ?? 0;
    if ((c3 & 0xc0) !== 0x80 || i + 3 >= end || b > 0xf4) return Text.bad;
    if ((b === 0xf0 && c1 < 0x90) || (b === 0xf4 && c1 > 0x8f)) return Text.bad;
    const cp = ((b & 0x07) << 18) | ((c1 & 0x3f) << 12) | ((c2 & 0x3f) << 6) | (c3 & 0x3f);
    if ((cp & 0xfffe) === 0xfffe) return Text.bad;
    i += 4;
  }
  return result;
}

function sameBytes(
  bytes: Uint8Array,
  start: number,
  end: number,
  otherStart: number,
  otherEnd: number,
): boolean {
  // A writer that shares a batch's repeated strings (the SDK's does) points every event at one copy.
  if (start === otherStart && end === otherEnd) return true;
  if (end - start !== otherEnd - otherStart || otherStart < 0) return false;
  for (let i = 0; i < end - start; i++) if (bytes[start + i] !== bytes[otherStart + i]) return false;
  return true;
}

/** `a` < `b` in byte order. */
function bytesBefore(bytes: Uint8Array, a: number, aEnd: number, b: number, bEnd: number): boolean {
  for (; a < aEnd && b < bEnd; a++, b++) {
    if (bytes[a] !== bytes[b]) return (bytes[a] as number) < (bytes[b] as number);
  }
  return aEnd - a < bEnd - b;
}

function text(bytes: Uint8Array, start: number, end: number, ascii: boolean): string {
  return ascii && end - start <= 256
    ? String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[])
    : decoder.decode(bytes.subarray(start, end));
}

function textEquals(bytes: Uint8Array, start: number, end: number, expected: string): boolean {
  if (end - start !== expected.length) return false;
  for (let i = 0; i < expected.length; i++) if (bytes[start + i] !== expected.charCodeAt(i)) return false;
  return true;
}

/** Per-slot memory of the previous event's accepted bytes, to skip re-checking repeated values. */
class Previous {
  readonly start = new Int32Array(16).fill(-1);
  readonly end = new Int32Array(16).fill(-1);

  reset(): void {
    this.start.fill(-1);
    this.end.fill(-1);
  }
}

export interface InvalidEventReport {
  readonly index: number;
  readonly issues: readonly ValidationIssue[];
}

export class EventBlockChecker {
  readonly #reader = new EventBlockReader();
  readonly #previous = new Previous();
  readonly #bytesMax: number;
  readonly #extensionCountMax: number;
  readonly #dataBytesMax: number;
  /**
   * After `firstInvalid` found every event valid: the latest `deliverat` of the
   * block in epoch milliseconds, 0 when no event has one.
   */
  deliverAtMs = 0;

  constructor(limits: ValidationLimits = {}) {
    this.#bytesMax = limits.attributeValueBytesMax ?? DEFAULT_LIMITS.attributeValueBytesMax;
    this.#extensionCountMax = limits.extensionCountMax ?? DEFAULT_LIMITS.extensionCountMax;
    this.#dataBytesMax = limits.dataBytesMax ?? DEFAULT_LIMITS.dataBytesMax;
  }

  /**
   * The first event of a verified event block that breaks a rule, with its
   * issues, or null when every event is valid.
   */
  firstInvalid(block: Uint8Array): InvalidEventReport | null {
    const reader = this.#reader;
    const count = reader.reset(block);
    this.#previous.reset();
    this.deliverAtMs = 0;
    for (let i = 0; i < count; i++) {
      reader.selectEvent(i);
      if (!this.#eventValid()) return { index: i, issues: this.#issuesOf(block, i) };
    }
    return null;
  }

  /** The exact issues, from the reference validator on the decoded event, plus what only bytes show. */
  #issuesOf(block: Uint8Array, index: number): ValidationIssue[] {
    const fields = decodeEventBatch(block)[index];
    const issues =
      fields === undefined
        ? []
        : validateEvent(fromEventFields(fields), {
            attributeValueBytesMax: this.#bytesMax,
            extensionCountMax: this.#extensionCountMax,
            dataBytesMax: this.#dataBytesMax,
          });
    if (issues.length > 0) return issues;
    return [
      {
        attribute: 'event',
        rule: ValidationRule.FORBIDDEN_CHARACTER,
        message:
          'has an attribute that is not valid UTF-8, or extensions that are not sorted by name and unique',
      },
    ];
  }

  /** A String attribute's bytes: present → non-empty, within the length limit, good characters. */
  #string(slot: number, required: boolean, syntax: ((value: string) => boolean) | null): boolean {
    const reader = this.#reader;
    const previous = this.#previous;
    if (!reader.eventRange(slot)) return !required;
    const { start, end } = reader;
    if (end === start || end - start > this.#bytesMax) return false;
    if (sameBytes(reader.bytes, start, end, previous.start[slot] as number, previous.end[slot] as number))
      return true;
    const scan = scanText(reader.bytes, start, end);
    if (scan === Text.bad) return false;
    if (syntax !== null && !syntax(text(reader.bytes, start, end, scan === Text.ascii))) return false;
    previous.start[slot] = start;
    previous.end[slot] = end;
    return true;
  }

  #eventValid(): boolean {
    const reader = this.#reader;
    if (
      reader.eventRange(EventSlot.specversion) &&
      !textEquals(reader.bytes, reader.start, reader.end, '1.0')
    )
      return false;
    if (
      !this.#string(EventSlot.id, true, null) ||
      !this.#string(EventSlot.source, true, isUriReference) ||
      !this.#string(EventSlot.type, true, null) ||
      !this.#string(EventSlot.subject, false, null) ||
      !this.#string(EventSlot.time, false, isTimestamp) ||
      !this.#string(EventSlot.datacontenttype, false, isMediaType) ||
      !this.#string(EventSlot.dataschema, false, isAbsoluteUri)
    )
      return false;
    if (reader.eventRange(EventSlot.data) && reader.end - reader.start > this.#dataBytesMax) return false;
    return this.#extensionsValid();
  }

  #extensionsValid(): boolean {
    const reader = this.#reader;
    const count = reader.extensionCount;
    if (count > this.#extensionCountMax) return false;
    let previousName = -1;
    let previousNameEnd = -1;
    for (let j = 0; j < count; j++) {
      reader.selectExtension(j);
      if (!reader.extensionRange(ExtensionSlot.name)) return false;
      const { start, end } = reader;
      const bytes = reader.bytes;
      if (start === end) return false;
      for (let i = start; i < end; i++) {
        const b = bytes[i] as number;
        if (!((b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39))) return false;
      }
      if (previousName >= 0 && !bytesBefore(bytes, previousName, previousNameEnd, start, end)) return false;
      previousName = start;
      previousNameEnd = end;
      // Names of context attributes and the JSON data members are reserved; all are short.
      const name = end - start <= 15 ? text(bytes, start, end, true) : '';
      if (name === 'data' || name === 'data_base64' || isContextAttribute(name)) return false;
      const kind = reader.extensionKind();
      if (kind >= KIND_COUNT) return false;
      if (STRING_KINDS.has(kind)) {
        const present = reader.extensionRange(ExtensionSlot.text);
        const valueStart = reader.start;
        const valueEnd = reader.end;
        if (NON_EMPTY_EXTENSIONS.includes(name)) {
          if (!present || valueStart === valueEnd) return false;
          if (name === 'traceparent' && !isTraceparent(text(bytes, valueStart, valueEnd, true))) return false;
        }
        if (
          present &&
          (valueEnd - valueStart > this.#bytesMax || scanText(bytes, valueStart, valueEnd) === Text.bad)
        )
          return false;
        if (name === Extension.DELIVER_AT && !this.#deliverAt(bytes, valueStart, valueEnd)) return false;
      } else if (NON_EMPTY_EXTENSIONS.includes(name) || name === Extension.DELIVER_AT) {
        return false; // these must be Strings (deliverat a Timestamp)
      } else if (
        kind === BINARY_KIND &&
        reader.extensionRange(ExtensionSlot.binary) &&
        reader.end - reader.start > this.#bytesMax
      ) {
        return false;
      }
    }
    return true;
  }

  /** A `deliverat` value (checked for characters already): an RFC 3339 date-time, the latest one kept. */
  #deliverAt(bytes: Uint8Array, start: number, end: number): boolean {
    // Absent text reads as '' (start -1), which is no date-time either. Date-times are ASCII.
    const value = start < 0 ? '' : text(bytes, start, end, true);
    if (timestampProblem(value) !== undefined) return false;
    this.deliverAtMs = Math.max(this.deliverAtMs, timestampMs(value));
    return true;
  }
}
