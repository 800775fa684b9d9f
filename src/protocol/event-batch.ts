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
  const reason = verifyBuffer(bytes, 'EventBatch', limits);
  if (reason !== null) throw new BrokerError('MALFORMED_FRAME', `malformed event batch: ${reason}`);
  return wire.EventBatch.getRootAsEventBatch(new flatbuffers.ByteBuffer(bytes)).eventsLength();
}

/**
 * Decodes every event of a verified-or-not event block into plain objects
 * (an edge operation: consumers and the HTTP API, not the publish path).
 * Binary values are views into `bytes`.
 */
export function decodeEventBatch(
  bytes: Uint8Array,
  limits: VerifyLimits = defaultVerifyLimits,
): EventFields[] {
  const count = countEventBatch(bytes, limits);
  const batch = wire.EventBatch.getRootAsEventBatch(new flatbuffers.ByteBuffer(bytes));
  const events: EventFields[] = [];
  const event = new wire.Event();
  const extension = new wire.Extension();
  for (let i = 0; i < count; i++) {
    batch.events(i, event);
    const extensions: ExtensionField[] = [];
    for (let j = 0; j < event.extensionsLength(); j++) {
      event.extensions(j, extension);
      extensions.push(decodeExtension(extension));
    }
    events.push({
      id: event.id() as string,
      source: event.source() as string,
      type: event.type() as string,
      specversion: event.specversion() ?? '1.0',
      ...optionalField('subject', event.subject()),
      ...optionalField('time', event.time()),
      ...optionalField('datacontenttype', event.datacontenttype()),
      ...optionalField('dataschema', event.dataschema()),
      ...(extensions.length > 0 ? { extensions } : {}),
      ...(event.dataArray() === null ? {} : { data: event.dataArray() as Uint8Array }),
    });
  }
  return events;
}

function optionalField<K extends string>(key: K, value: string | null): { [P in K]?: string } {
  return (value === null ? {} : { [key]: value }) as { [P in K]?: string };
}

function decodeExtension(extension: wire.Extension): ExtensionField {
  const name = extension.name() as string;
  const kind = extensionKinds[extension.kind()];
  switch (kind) {
    case 'integer':
      return { name, kind, value: extension.integer() };
    case 'boolean':
      return { name, kind, value: extension.boolean() };
    case 'binary':
      return { name, kind, value: extension.binaryArray() ?? new Uint8Array(0) };
    case undefined:
      throw new BrokerError('MALFORMED_FRAME', `extension ${name} has unknown kind ${extension.kind()}`);
    default:
      return { name, kind, value: extension.text() ?? '' };
  }
}
