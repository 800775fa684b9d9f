/**
 * Dead-letter topics from the SDK (`client.deadLetters`): list them, show
 * dead letters with where they came from and why, redrive them. These are
 * operator calls, so they go over the broker's HTTP API (`/v1/dlq`, the same
 * the CLI uses) with the platform's `fetch`, in Node and in browsers alike.
 */
import { BrokerError, errorCodes, type ErrorName } from '../protocol/index.js';

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

/** The broker's HTTP base for a client URL (http(s), or ws(s) with or without `/v1/ws`). */
function httpBase(url: string): string {
  const parsed = new URL(url);
  if (parsed.protocol === 'ws:') parsed.protocol = 'http:';
  else if (parsed.protocol === 'wss:') parsed.protocol = 'https:';
  return parsed.origin;
}

export class DeadLetters {
  readonly #base: string;
  readonly #authToken: string | null;

  constructor(url: string, authToken: string | null) {
    this.#base = httpBase(url);
    this.#authToken = authToken;
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

  /** Calls the API; a problem+json answer becomes the BrokerError it names. */
  async #call(path: string, init: RequestInit = {}): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(`${this.#base}${path}`, {
        ...init,
        ...(this.#authToken === null ? {} : { headers: { authorization: `Bearer ${this.#authToken}` } }),
      });
    } catch (error) {
      throw new BrokerError('NOT_CONNECTED', `cannot reach the broker at ${this.#base}: ${String(error)}`, {
        cause: error,
      });
    }
    const body = (await response.json().catch(() => null)) as { code?: string; detail?: string } | null;
    if (!response.ok) {
      const name =
        body?.code !== undefined && body.code in errorCodes ? (body.code as ErrorName) : 'INTERNAL';
      throw new BrokerError(name, body?.detail ?? `HTTP ${response.status}`);
    }
    return body;
  }
}
