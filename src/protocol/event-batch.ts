/**
 * The event block of a batch: an `EventBatch` FlatBuffer holding the events'
 * CloudEvents attributes and data. A client encodes it once; the broker stores
 * and delivers those bytes unchanged. `src/events/` maps these plain fields to
 * and from its CloudEvent model; nothing outside `protocol/` touches the
 * generated accessors.
 */
import * as flatbuffers from 'flatbuffers';
import * as wire from './generated/eddy.js';
import { BrokerError } from './error-codes.js';
import { writeEventBatch } from './event-batch-writer.js';
import { verifyBuffer, defaultVerifyLimits, type VerifyLimits } from './verify.js';
import { EventBlockReader, EventSlot, ExtensionSlot } from './event-block-reader.js';
import { BlockStrings } from './block-strings.js';

export const extensionKinds = [
  'string',
  'integer',
  'boolean',
  'binary',
  'uri',
  'uri-reference',
  'timestamp',
] as const;
export type ExtensionKind = (typeof extensionKinds)[number];

export type ExtensionField =
  | {
      readonly name: string;
      readonly kind: 'string' | 'uri' | 'uri-reference' | 'timestamp';
      readonly value: string;
    }
  | { readonly name: string; readonly kind: 'integer'; readonly value: number }
  | { readonly name: string; readonly kind: 'boolean'; readonly value: boolean }
  | { readonly name: string; readonly kind: 'binary'; readonly value: Uint8Array };

export interface EventFields {
  readonly id: string;
  readonly source: string;
  readonly type: string;
  /** Absent on the wire means "1.0". */
  readonly specversion?: string;
  readonly subject?: string;
  readonly time?: string;
  readonly datacontenttype?: string;
  readonly dataschema?: string;
  readonly extensions?: readonly ExtensionField[];
  readonly data?: Uint8Array;
}

/** Encodes events as one EventBatch. The result is a fresh copy. */
export function encodeEventBatch(events: readonly EventFields[]): Uint8Array {
  return writeEventBatch(events).slice();
}

/**
 * Encodes events into a buffer shared by every call: valid only until the next
 * encodeEventBatch or encodeEventBatchTransient. For a block that is copied at
 * once (into a frame, or by compression).
 */
export function encodeEventBatchTransient(events: readonly EventFields[]): Uint8Array {
  return writeEventBatch(events);
}

/**
 * Verifies an event block and returns how many events it holds, or throws a
 * `BrokerError` MALFORMED_FRAME. Reads only the vector length after verifying.
 */
export function countEventBatch(bytes: Uint8Array, limits: VerifyLimits = defaultVerifyLimits): number {
  verifyEventBatch(bytes, limits);
  return wire.EventBatch.getRootAsEventBatch(new flatbuffers.ByteBuffer(bytes)).eventsLength();
}

function verifyEventBatch(bytes: Uint8Array, limits: VerifyLimits): void {
  const reason = verifyBuffer(bytes, 'EventBatch', limits);
  if (reason !== null) throw new BrokerError('MALFORMED_FRAME', `malformed event batch: ${reason}`);
}

/**
 * Decodes every event of a verified-or-not event block into plain objects
 * (consumers, the HTTP API, filters' outputs; not the publish path). Binary
 * values are views into `bytes`. Strings decode as TextDecoder decodes them; a
 * context attribute's string is decoded once for the events that share its
 * bytes, as the batch writer shares a batch's repeated source, type, time and
 * content type (event-batch-writer.ts).
 */
export function decodeEventBatch(
  bytes: Uint8Array,
  limits: VerifyLimits = defaultVerifyLimits,
): EventFields[] {
  verifyEventBatch(bytes, limits);
  const reader = new EventBlockReader();
  const strings = new BlockStrings(bytes);
  const count = reader.reset(bytes);
  const events: EventFields[] = [];
  for (let i = 0; i < count; i++) {
    reader.selectEvent(i);
    // Absent required attributes decode as null, for the validator to report.
    const event: Mutable<EventFields> = {
      id: strings.context(reader, EventSlot.id) as string,
      source: strings.context(reader, EventSlot.source) as string,
      type: strings.context(reader, EventSlot.type) as string,
      specversion: strings.context(reader, EventSlot.specversion) ?? '1.0',
    };
    const subject = strings.context(reader, EventSlot.subject);
    if (subject !== null) event.subject = subject;
    const time = strings.context(reader, EventSlot.time);
    if (time !== null) event.time = time;
    const datacontenttype = strings.context(reader, EventSlot.datacontenttype);
    if (datacontenttype !== null) event.datacontenttype = datacontenttype;
    const dataschema = strings.context(reader, EventSlot.dataschema);
    if (dataschema !== null) event.dataschema = dataschema;
    if (reader.extensionCount > 0) event.extensions = decodeExtensions(reader, strings);
    if (reader.eventRange(EventSlot.data)) event.data = bytes.subarray(reader.start, reader.end);
    events.push(event);
  }
  return events;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function decodeExtensions(reader: EventBlockReader, strings: BlockStrings): ExtensionField[] {
  const extensions: ExtensionField[] = [];
  for (let j = 0; j < reader.extensionCount; j++) {
    reader.selectExtension(j);
    const name = (reader.extensionRange(ExtensionSlot.name) ? strings.range(reader) : null) as string;
    const kindNumber = reader.extensionKind();
    const kind = extensionKinds[kindNumber];
    switch (kind) {
      case 'integer':
        extensions.push({ name, kind, value: reader.extensionInteger() });
        break;
      case 'boolean':
        extensions.push({ name, kind, value: reader.extensionBoolean() });
        break;
      case 'binary':
        extensions.push({
          name,
          kind,
          value: reader.extensionRange(ExtensionSlot.binary)
            ? reader.bytes.subarray(reader.start, reader.end)
            : new Uint8Array(0),
        });
        break;
      case undefined:
        throw new BrokerError('MALFORMED_FRAME', `extension ${name} has unknown kind ${kindNumber}`);
      default:
        extensions.push({
          name,
          kind,
          value: reader.extensionRange(ExtensionSlot.text) ? strings.range(reader) : '',
        });
    }
  }
  return extensions;
}
