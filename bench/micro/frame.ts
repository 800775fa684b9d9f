/**
 * Frame encode and decode, per event: what the SDK does to every batch it sends and the broker
 * to every batch it receives, on one core.
 *
 * - `frame-encode`: `encodeEventBatchTransient` (the hand-written EventBatch writer) over events
 *   shaped as the SDK shapes them (an id of their own, source, type, time and content type shared),
 *   then `encodeFrameTransient` of the `PublishBatch` that carries the block: the SDK's path from
 *   a batch of events to the bytes it sends, without the socket and without LZ4.
 * - `frame-decode`: `decodeFrame` of that frame (which verifies the envelope) and a walk over its
 *   events with `EventBlockReader` reading each id and data range in place: the broker's
 *   zero-copy view of a publish, without the event block's own verification (see `verify`).
 * - `frame-consume`: `decodeStoredBatch` of the stored batch that block becomes: the SDK's path
 *   from a delivery to the `DeliveredEvent`s its handler gets (the block verified, each event
 *   decoded into a CloudEvent), without the socket.
 */
import {
  EventBlockReader,
  EventSlot,
  decodeFrame,
  encodeEventBatchTransient,
  encodeFrame,
  encodeFrameTransient,
  type Message,
} from '../../src/protocol/index.js';
import { decodeStoredBatch } from '../../src/client/subscriptions.js';
import type { DeliveredEvent } from '../../src/client/index.js';
import { sdkEvents, type MicroArea, type MicroCase } from './case.js';

const BATCH_EVENTS = 100;
const EVENT_BYTES = [100, 1024] as const;

/** The `PublishBatch` the SDK sends for an event block (one partition, unkeyed, no compression). */
export function publishMessage(block: Uint8Array, eventCount: number): Message {
  return {
    type: 'PublishBatch',
    topic: 'bench',
    key: null,
    partition: -1,
    ack: 'leader',
    producerId: -1,
    sequence: -1,
    eventCount,
    compression: 'none',
    uncompressedBytes: 0,
    events: block,
  };
}

export async function frameArea(): Promise<MicroArea> {
  const cases: MicroCase[] = [];
  for (const eventBytes of EVENT_BYTES) {
    const events = sdkEvents(BATCH_EVENTS, eventBytes);
    const params = { eventBytes, batchEvents: BATCH_EVENTS, op: 'event' };
    cases.push({
      name: 'frame-encode',
      params,
      opsPerCall: BATCH_EVENTS,
      run: () => {
        const block = encodeEventBatchTransient(events);
        return encodeFrameTransient(1, publishMessage(block, events.length)).length;
      },
    });
    const frame = encodeFrame(1, publishMessage(encodeEventBatchTransient(events).slice(), events.length));
    const reader = new EventBlockReader();
    cases.push({
      name: 'frame-decode',
      params: { ...params, frameBytes: frame.length },
      opsPerCall: BATCH_EVENTS,
      run: () => {
        const { message } = decodeFrame(frame);
        if (message.type !== 'PublishBatch') throw new Error(`decoded a ${message.type}`);
        const count = reader.reset(message.events);
        let bytes = 0;
        for (let i = 0; i < count; i++) {
          reader.selectEvent(i);
          if (reader.eventRange(EventSlot.id)) bytes += reader.end - reader.start;
          if (reader.eventRange(EventSlot.data)) bytes += reader.end - reader.start;
        }
        return bytes;
      },
    });
    const stored = {
      baseOffset: 0,
      recordCount: BATCH_EVENTS,
      firstTimestampMs: 0,
      compression: 'none',
      key: null,
      events: encodeEventBatchTransient(events).slice(),
    } as const;
    cases.push({
      name: 'frame-consume',
      params,
      opsPerCall: BATCH_EVENTS,
      run: () => {
        const delivered: DeliveredEvent[] = [];
        decodeStoredBatch(null, stored, 'bench', 0, 0, delivered);
        return delivered.length;
      },
    });
  }
  return { cases, close: async () => {} };
}
