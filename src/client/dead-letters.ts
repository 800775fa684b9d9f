/**
 * Dead-letter topics from the SDK (`client.deadLetters`): list them, show
 * dead letters with where they came from and why, redrive them. These are
 * operator calls, so they go over the broker's HTTP API (`/v1/dlq`, the same
 * the CLI uses) with the platform's `fetch`, in Node and in browsers alike.
 */
import type { HttpApi } from './http-api.js';

export interface DeadLetterTopic {
  readonly topic: string;
  readonly deadLetters: number;
  readonly redriven: number;
}

export interface DeadLetter {
  readonly partition: number;
  readonly offset: number;
  /** From the dead-letter extensions; null where one is absent. */
  readonly origin: {
    readonly topic: string | null;
    readonly partition: number | null;
    readonly offset: string | null;
    readonly subscription: string | null;
    readonly attempts: number | null;
    readonly reason: string | null;
    readonly error: string | null;
  };
  readonly redrive: Redrive | null;
  /** The event, in structured-mode JSON. */
  readonly event: Record<string, unknown>;
}

export interface Redrive {
  readonly at: string;
  readonly partition: number;
  readonly offset: number;
  readonly target: string;
  readonly targetPartition: number;
  readonly targetOffset: number;
}

export interface RedriveOptions {
  readonly partition?: number;
  /** These dead letters; without them, every one from `from` to `to` (exclusive). */
  readonly offsets?: readonly number[];
  readonly from?: number;
  readonly to?: number;
  /** Publish to this topic instead of the one each came from. */
  readonly target?: string;
  /** Include dead letters redriven before. */
  readonly again?: boolean;
}

export class DeadLetters {
  readonly #api: HttpApi;

  constructor(api: HttpApi) {
    this.#api = api;
  }

  async list(): Promise<DeadLetterTopic[]> {
    return ((await this.#call('/v1/dlq')) as { deadLetterTopics: DeadLetterTopic[] }).deadLetterTopics;
  }

  async show(
    topic: string,
    options: { readonly partition?: number; readonly offset?: number; readonly limit?: number } = {},
  ): Promise<{ deadLetters: DeadLetter[]; nextOffset: number; endOffset: number }> {
    const query = new URLSearchParams({
      partition: String(options.partition ?? 0),
      offset: String(options.offset ?? 0),
      limit: String(options.limit ?? 100),
    });
    return (await this.#call(`/v1/dlq/${encodeURIComponent(topic)}?${query.toString()}`)) as {
      deadLetters: DeadLetter[];
      nextOffset: number;
      endOffset: number;
    };
  }

  /** Publishes dead letters again (recorded by the broker, so `show` marks them and a redrive skips them). */
  async redrive(topic: string, options: RedriveOptions): Promise<Redrive[]> {
    const body = JSON.stringify(options);
    const answer = await this.#call(`/v1/dlq/${encodeURIComponent(topic)}/redrive`, { method: 'POST', body });
    return (answer as { redriven: Redrive[] }).redriven;
  }

  #call(path: string, init: RequestInit = {}): Promise<unknown> {
    return this.#api.call(path, init);
  }
}
