/** PublishBatch messages for tests that speak the protocol directly: ack `leader`, no key or producer. */
import { encodeEventBatch, type EventFields, type MessageOf } from '../../src/protocol/index.js';

type PublishBatch = MessageOf<'PublishBatch'>;

/** A PublishBatch of an event block already encoded (or deliberately malformed) holding `eventCount` events. */
export function publishBlock(
  topic: string,
  events: Uint8Array,
  eventCount: number,
  overrides: Partial<PublishBatch> = {},
): PublishBatch {
  return {
    type: 'PublishBatch',
    topic,
    key: null,
    partition: -1,
    ack: 'leader',
    producerId: -1,
    sequence: -1,
    eventCount,
    compression: 'none',
    uncompressedBytes: 0,
    events,
    ...overrides,
  };
}

/** A PublishBatch of `events`. */
export function publishBatch(
  topic: string,
  events: readonly EventFields[],
  overrides: Partial<PublishBatch> = {},
): PublishBatch {
  return publishBlock(topic, encodeEventBatch(events), events.length, overrides);
}
