/**
 * What the gateway checks of a PublishBatch before any of it is stored: size
 * limits, that the event block is a well-formed EventBatch of as many events as
 * announced, and that every event follows the CloudEvents rules. A batch with
 * one bad event is refused whole. The same pass reads the events' latest
 * `deliverat` (scheduled delivery).
 */
import { EventBlockChecker } from '../events/index.js';
import { inflateEventBlock } from '../broker/index.js';
import { BrokerError, countEventBatch, type MessageOf } from '../protocol/index.js';

export interface PublishLimits {
  readonly maxBatchEvents: number;
  /** Largest event block once decompressed. */
  readonly maxBatchBytes: number;
}

/** The event block uncompressed, or a typed error; refuses a block that would inflate past the limit. */
function eventBlock(message: MessageOf<'PublishBatch'>, limits: PublishLimits): Uint8Array {
  if (message.compression === 'none') return message.events;
  const events = message.events;
  // lz4-napi prepends the uncompressed size (u32, little-endian): check it before inflating anything.
  if (events.length < 4) throw new BrokerError('MALFORMED_FRAME', 'an LZ4 event block is at least 4 bytes');
  const size = new DataView(events.buffer, events.byteOffset, 4).getUint32(0, true);
  if (size > limits.maxBatchBytes)
    throw new BrokerError(
      'BATCH_TOO_LARGE',
      `the event block would inflate to ${size} bytes (limit ${limits.maxBatchBytes})`,
    );
  return inflateEventBlock(events);
}

/** One checker per gateway: it keeps scratch state between calls, never between events of two batches. */
const checker = new EventBlockChecker();

/**
 * Checks a publish; throws a BrokerError unless every event may be stored.
 * Returns the latest `deliverat` of its events in epoch ms, 0 when none has one.
 */
export function checkPublish(message: MessageOf<'PublishBatch'>, limits: PublishLimits): number {
  if (message.eventCount < 1)
    throw new BrokerError('INVALID_REQUEST', 'a batch must hold at least one event');
  if (message.eventCount > limits.maxBatchEvents)
    throw new BrokerError(
      'BATCH_TOO_LARGE',
      `a batch holds at most ${limits.maxBatchEvents} events, this one ${message.eventCount}`,
    );
  const block = eventBlock(message, limits);
  const count = countEventBatch(block);
  if (count !== message.eventCount)
    throw new BrokerError(
      'INVALID_REQUEST',
      `event_count says ${message.eventCount} but the block holds ${count} events`,
    );
  const invalid = checker.firstInvalid(block);
  if (invalid !== null) {
    const detail = invalid.issues
      .map((issue) => `${issue.attribute}: ${issue.message} [${issue.rule}]`)
      .join('; ');
    throw new BrokerError('INVALID_EVENT', `event ${invalid.index} is not a valid CloudEvent: ${detail}`);
  }
  return checker.deliverAtMs;
}
