/**
 * Dead-letter topics from the SDK (`client.deadLetters`): list them, show
 * dead letters with where they came from and why, redrive them. These are
 * operator calls, so they go over the broker's HTTP API (`/v1/dlq`, the same
 * the CLI uses) with the platform's `fetch`, in Node and in browsers alike.
 */
import type { DeadLetterOrigin, DeadLetterTopic, Redrive, RedriveRequest } from '../protocol/index.js';
import type { HttpApi } from './http-api.js';

export interface DeadLetter {
  readonly partition: number;
  readonly offset: number;
  readonly origin: DeadLetterOrigin;
  readonly redrive: Redrive | null;
  /** The event, in structured-mode JSON. */
  readonly event: Record<string, unknown>;
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
  async redrive(topic: string, options: RedriveRequest): Promise<Redrive[]> {
    const body = JSON.stringify(options);
    const answer = await this.#call(`/v1/dlq/${encodeURIComponent(topic)}/redrive`, { method: 'POST', body });
    return (answer as { redriven: Redrive[] }).redriven;
  }

  #call(path: string, init: RequestInit = {}): Promise<unknown> {
    return this.#api.call(path, init);
  }
}
