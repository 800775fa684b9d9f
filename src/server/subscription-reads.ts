/**
 * Reading durable subscriptions over HTTP, without joining them (clients that
 * poll, as with SQS or Kafka's REST proxy):
 *
 * - stream, exclusive, failover: `read` returns events from the committed
 *   offsets on, and where reading got to per partition; the client commits
 *   those positions when it is done (`commitIdle`). Only while the
 *   subscription has no members, whose positions these would be.
 * - queue: `read` claims due events for a consumer id of its own (each
 *   answer's receipts name it), as a member would; the client acks or nacks
 *   them by receipt before their ack deadline, else they come round again.
 *
 * The subscription's filter applies (CloudEvents SQL and dialects; WASM
 * filters run only for members), and so does its topics' message.ttl.ms.
 */
import {
  EXPIRY_CONSUMER,
  SubscriptionFilter,
  eventBlockOf,
  monotonicMs,
  type Broker,
  type QueueGroup,
} from '../broker/index.js';
import {
  BrokerError,
  decodeEventBatch,
  forEachStoredBatch,
  isKept,
  type EventFields,
  type SubscriptionDescription,
} from '../protocol/index.js';
import { wasmRefOf } from './connection-state.js';

export interface ReadEvent {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly event: EventFields;
  /** Queues: how many times it was delivered, this time included. */
  readonly attempt?: number;
  /** Queues: what an ack or nack names it by. */
  readonly receipt?: string;
}

export interface ReadResult {
  readonly events: ReadEvent[];
  /** Stream types: per partition, the next offset after what was read (commit these when done). */
  readonly positions: { topic: string; partition: number; offset: number }[];
}

const READ_BYTES = 1 << 20;

export async function readSubscription(broker: Broker, name: string, max: number): Promise<ReadResult> {
  const description = broker.subscriptions.describe(name);
  const filter = readFilter(description);
  return description.subscriptionType === 'queue'
    ? { events: await readQueue(broker, description, filter, max), positions: [] }
    : readStream(broker, description, filter, max);
}

function readFilter(description: SubscriptionDescription): SubscriptionFilter | null {
  if (description.filter === '') return null;
  if (wasmRefOf(description.filter) !== null)
    throw new BrokerError(
      'INVALID_REQUEST',
      `subscription "${description.name}" has a WASM filter, which runs only for members that join it`,
    );
  return SubscriptionFilter.parse(description.filter);
}

function ttlOf(broker: Broker, topic: string): number | null {
  const ttl = broker.describeTopic(topic).config['message.ttl.ms'];
  return ttl === undefined ? null : Number(ttl);
}

async function readStream(
  broker: Broker,
  description: SubscriptionDescription,
  filter: SubscriptionFilter | null,
  max: number,
): Promise<ReadResult> {
  if (description.members.length > 0)
    throw new BrokerError(
      'SUBSCRIPTION_IN_USE',
      `subscription "${description.name}" has members; HTTP reads would take their events`,
    );
  const events: ReadEvent[] = [];
  const positions: ReadResult['positions'] = [];
  for (const p of description.partitions) {
    const ttlMs = ttlOf(broker, p.topic);
    let offset = p.committed;
    while (events.length < max && offset < p.endOffset) {
      const fetched = await broker.fetch(p.topic, p.partition, offset, READ_BYTES);
      forEachStoredBatch(fetched.batches, (batch) => {
        const expired = ttlMs !== null && Date.now() - batch.firstTimestampMs > ttlMs;
        const block = eventBlockOf(batch);
        const kept = expired ? 'none' : (filter?.keepEvents(block) ?? null);
        decodeEventBatch(block).forEach((event, i) => {
          const at = batch.baseOffset + i;
          if (at < offset || events.length >= max) return;
          offset = at + 1; // past what the filter or the TTL left out as well
          if (kept === 'none' || (kept instanceof Uint8Array && !isKept(kept, i))) return;
          events.push({ topic: p.topic, partition: p.partition, offset: at, event });
        });
      });
      if (fetched.batches.length === 0) break;
    }
    positions.push({ topic: p.topic, partition: p.partition, offset });
  }
  return { events, positions };
}

async function readQueue(
  broker: Broker,
  description: SubscriptionDescription,
  filter: SubscriptionFilter | null,
  max: number,
): Promise<ReadEvent[]> {
  const queue = broker.subscriptions.queueOf(description.name);
  const consumer = broker.subscriptions.newConsumerId();
  const events: ReadEvent[] = [];
  for (const p of description.partitions) {
    const ttlMs = ttlOf(broker, p.topic);
    const state = queue.state(p);
    const log = broker.partition(p.topic, p.partition);
    while (events.length < max) {
      if (state.ackFloor < log.startOffset) state.forgetBefore(log.startOffset);
      const offset = state.nextRead(monotonicMs(), log.endOffset);
      if (offset === null) break;
      const fetched = await broker.fetch(p.topic, p.partition, offset, 1);
      let claimedAny = false;
      forEachStoredBatch(fetched.batches, (batch) => {
        const first = Math.max(offset, batch.baseOffset);
        const count = Math.min(batch.baseOffset + batch.recordCount - first, max - events.length);
        if (ttlMs !== null && Date.now() - batch.firstTimestampMs > ttlMs) {
          const expired = state.claim(EXPIRY_CONSUMER, first, count, monotonicMs());
          queue.claimed();
          queue.expired(p, expired);
          claimedAny = expired.length > 0;
          return;
        }
        const claimed = state.claim(consumer, first, count, monotonicMs());
        if (claimed.length === 0) return;
        claimedAny = true;
        queue.claimed();
        const block = eventBlockOf(batch);
        const kept = filter?.keepEvents(block) ?? null;
        const decoded = decodeEventBatch(block);
        const dropped: number[] = [];
        for (const { offset: at, attempt } of claimed) {
          const i = at - batch.baseOffset;
          if (kept === 'none' || (kept instanceof Uint8Array && !isKept(kept, i))) dropped.push(at);
          else
            events.push({
              topic: p.topic,
              partition: p.partition,
              offset: at,
              event: decoded[i] as EventFields,
              attempt,
              receipt: receiptOf(consumer, p.topic, p.partition, at),
            });
        }
        if (dropped.length > 0) void queue.ack(consumer, p, dropped, false);
      });
      if (!claimedAny) break;
    }
  }
  return events;
}

/** `consumer:topic:partition:offset` — topic names have no colons. */
function receiptOf(consumer: number, topic: string, partition: number, offset: number): string {
  return `${consumer}:${topic}:${partition}:${offset}`;
}

interface Receipt {
  readonly consumer: number;
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
}

export function parseReceipt(receipt: unknown): Receipt {
  const parts = typeof receipt === 'string' ? receipt.split(':') : [];
  const [consumer, topic, partition, offset] = [
    Number(parts[0]),
    parts[1] ?? '',
    Number(parts[2]),
    Number(parts[3]),
  ];
  if (
    parts.length !== 4 ||
    topic === '' ||
    ![consumer, partition, offset].every((n) => Number.isSafeInteger(n) && n >= 0)
  )
    throw new BrokerError('INVALID_REQUEST', `${JSON.stringify(receipt)} is not a receipt from a read`);
  return { consumer, topic, partition, offset };
}

/** Acks events by their receipts; resolves once on disk. */
export async function ackReceipts(queue: QueueGroup, receipts: readonly Receipt[]): Promise<void> {
  const groups = new Map<string, { receipt: Receipt; offsets: number[] }>();
  for (const r of receipts) {
    const key = `${r.consumer}:${r.topic}:${r.partition}`;
    const group = groups.get(key) ?? { receipt: r, offsets: [] };
    group.offsets.push(r.offset);
    groups.set(key, group);
  }
  await Promise.all(
    [...groups.values()].map(({ receipt, offsets }) =>
      queue.ack(receipt.consumer, { topic: receipt.topic, partition: receipt.partition }, offsets, true),
    ),
  );
}
