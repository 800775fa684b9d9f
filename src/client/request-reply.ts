/**
 * Request-reply over topics. A requester publishes an event that names its
 * inbox in the `replyto` extension; a responder publishes its answer to that
 * topic with the `correlationid` extension set to the request's `id`; the
 * requester matches the answer by it. The inbox is a topic of its own per
 * client (`inbox.<random>`, one partition, small segments, a minute of
 * retention), created at the first request, read from its end, and deleted
 * when the client closes.
 */
import { Extension, type CloudEvent } from '../events/index.js';
import { BrokerError, type TopicDescription } from '../protocol/index.js';
import type { DeliveredEvent, SubscribeOptions, Subscription } from './client.js';

export const REPLY_TO = Extension.REPLY_TO;
export const CORRELATION_ID = Extension.CORRELATION_ID;

/** What the inbox needs from the client. */
export interface InboxClient {
  createTopic(
    name: string,
    options: { partitions?: number; config?: Record<string, string> },
  ): Promise<TopicDescription>;
  deleteTopic(name: string): Promise<void>;
  subscribe(
    topic: string,
    options: SubscribeOptions,
    handler: (delivered: DeliveredEvent) => void | Promise<void>,
  ): Promise<Subscription>;
}

interface Waiting {
  readonly resolve: (reply: DeliveredEvent) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

function randomInboxName(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(8));
  return `inbox.${Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('')}`;
}

export class Inbox {
  readonly topic = randomInboxName();
  readonly #client: InboxClient;
  readonly #waiting = new Map<string, Waiting>();
  #subscription: Subscription | null = null;

  private constructor(client: InboxClient) {
    this.#client = client;
  }

  /** Creates the inbox topic and starts reading it. */
  static async open(client: InboxClient): Promise<Inbox> {
    const inbox = new Inbox(client);
    await client.createTopic(inbox.topic, {
      partitions: 1,
      config: { 'segment.bytes': String(1024 * 1024), 'retention.ms': String(60_000) },
    });
    try {
      inbox.#subscription = await client.subscribe(inbox.topic, { from: 'latest' }, (delivered) =>
        inbox.#onReply(delivered),
      );
    } catch (error) {
      await client.deleteTopic(inbox.topic).catch(() => undefined);
      throw error;
    }
    return inbox;
  }

  /** Resolves with the reply whose `correlationid` is `requestId`; TIMEOUT after `timeoutMs`. */
  expect(requestId: string, timeoutMs: number): Promise<DeliveredEvent> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(requestId);
        reject(new BrokerError('TIMEOUT', `no reply to request ${requestId} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiting.set(requestId, { resolve, reject, timer });
    });
  }

  /** The request failed before it was sent: stop waiting for its reply. */
  cancel(requestId: string, error: Error): void {
    const waiting = this.#waiting.get(requestId);
    if (waiting === undefined) return;
    this.#waiting.delete(requestId);
    clearTimeout(waiting.timer);
    waiting.reject(error);
  }

  #onReply(delivered: DeliveredEvent): void {
    const correlation = delivered.event.extensions?.[CORRELATION_ID];
    if (typeof correlation !== 'string') return; // not a reply: nothing waits for it
    const waiting = this.#waiting.get(correlation);
    if (waiting === undefined) return; // late (timed out) or duplicate
    this.#waiting.delete(correlation);
    clearTimeout(waiting.timer);
    waiting.resolve(delivered);
  }

  /** Fails what still waits, stops reading and deletes the inbox topic. */
  async close(): Promise<void> {
    for (const [id, waiting] of this.#waiting) {
      clearTimeout(waiting.timer);
      waiting.reject(new BrokerError('NOT_CONNECTED', `the client closed before request ${id} was answered`));
    }
    this.#waiting.clear();
    await this.#subscription?.close();
    await this.#client.deleteTopic(this.topic).catch(() => undefined);
  }
}

/** The topic a request asks its reply to go to. */
export function replyTopicOf(request: CloudEvent): string {
  const topic = request.extensions?.[REPLY_TO];
  if (typeof topic !== 'string' || topic === '')
    throw new BrokerError(
      'INVALID_REQUEST',
      `event ${request.id} is not a request: it has no "${REPLY_TO}" extension`,
    );
  return topic;
}
