/**
 * WebAssembly transforms on publish from the SDK (`client.transforms`):
 * attach one to a topic, read, list and detach (docs/filters.md#on-topics).
 * Operator calls, over the broker's HTTP API as the CLI makes them.
 */
import type { HttpApi } from './http-api.js';

/** What a failure of the transform on one event does: refuse the batch (default), or store it without that event. */
export type PublishTrapPolicy = 'reject' | 'skip';

export interface TopicTransform {
  readonly topic: string;
  /** The pinned `name@version`. */
  readonly transform: string;
  readonly onTrap: PublishTrapPolicy;
  /** 1 when first attached, one more on each replace. */
  readonly version: number;
  readonly updatedAt: string;
}

export class Transforms {
  readonly #api: HttpApi;

  constructor(api: HttpApi) {
    this.#api = api;
  }

  /**
   * Runs the uploaded transform `transform` (`name`, pinned to its latest
   * version, or `name@version`) on every publish to `topic` from now on, in
   * place of any before it. TOPIC_NOT_FOUND, INVALID_REQUEST for an unknown
   * filter or one that is not a transform, FILTER_FAILED for one that does not load.
   */
  set(
    topic: string,
    transform: string,
    options: { onTrap?: PublishTrapPolicy } = {},
  ): Promise<TopicTransform & { created: boolean }> {
    const body = JSON.stringify({
      transform,
      ...(options.onTrap === undefined ? {} : { onTrap: options.onTrap }),
    });
    return this.#api.call(path(topic), { method: 'PUT', body }) as Promise<
      TopicTransform & { created: boolean }
    >;
  }

  /** The topic's transform, or null when it has none. TOPIC_NOT_FOUND for a topic that does not exist. */
  get(topic: string): Promise<TopicTransform | null> {
    return this.#api
      .call(path(topic))
      .then((view) =>
        (view as { transform: string | null }).transform === null ? null : (view as TopicTransform),
      );
  }

  async list(): Promise<TopicTransform[]> {
    return ((await this.#api.call('/v1/transforms')) as { transforms: TopicTransform[] }).transforms;
  }

  /** Publishes to `topic` are stored as sent from now on. */
  remove(topic: string): Promise<void> {
    return this.#api.call(path(topic), { method: 'DELETE' }).then(() => undefined);
  }
}

/** The attachment's path; a TypeError at once for a topic that is not a non-empty string. */
function path(topic: string): string {
  if (typeof topic !== 'string' || topic === '') throw new TypeError('a topic name is a non-empty string');
  return `/v1/topics/${encodeURIComponent(topic)}/transform`;
}
