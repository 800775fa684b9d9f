/**
 * A subscription to every topic whose name matches a wildcard pattern
 * (`orders.*`, `orders.>`; see src/protocol/topic-pattern.ts), including
 * topics created after it started: the client lists topics again every
 * `patternRefreshMs` and subscribes to new matches from their first event,
 * since everything in a topic created after the subscription is new to it.
 * Each matching topic is an ordinary subscription underneath, so ordering,
 * credits and resuming after a reconnect are per topic and partition as usual.
 */
import { BrokerError, isBrokerError, matchesTopicPattern, type TopicDescription } from '../protocol/index.js';
import type {
  DeliveredEvent,
  StartFrom,
  SubscribeOptions,
  Subscription,
  WasmFilterOptions,
} from './client.js';
import { wasmFilterText } from './subscriptions.js';

type Handler = (delivered: DeliveredEvent) => void | Promise<void>;

/** What a pattern subscription needs from the client. */
export interface TopicSubscriber {
  listTopics(): Promise<TopicDescription[]>;
  subscribe(topic: string, options: SubscribeOptions, handler: Handler): Promise<Subscription>;
  readonly onError: (error: BrokerError) => void;
}

export class PatternSubscription implements Subscription {
  readonly #client: TopicSubscriber;
  readonly #pattern: string;
  /** A filter swap replaces it, so that topics found later start with the new filter. */
  #options: SubscribeOptions;
  readonly #handler: Handler;
  /** Matching topics subscribed to (or being subscribed to). */
  readonly #topics = new Map<string, Promise<Subscription | null>>();
  #timer: ReturnType<typeof setInterval> | null = null;
  #refreshing: Promise<void> | null = null;
  /** Filter swaps, one at a time in the order asked. */
  #swapping: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(client: TopicSubscriber, pattern: string, options: SubscribeOptions, handler: Handler) {
    this.#client = client;
    this.#pattern = pattern;
    this.#options = options;
    this.#handler = handler;
  }

  /** Subscribes to the topics that match now (from `options.from`), then watches for new ones. */
  static async start(
    client: TopicSubscriber,
    pattern: string,
    options: SubscribeOptions,
    handler: Handler,
    refreshMs: number,
  ): Promise<PatternSubscription> {
    const subscription = new PatternSubscription(client, pattern, options, handler);
    try {
      await subscription.#refresh(options.from ?? 'latest', true);
    } catch (error) {
      await subscription.close(); // the topics subscribed before the failure stop too
      throw error;
    }
    subscription.#timer = setInterval(() => void subscription.#refresh('earliest', false), refreshMs);
    (subscription.#timer as { unref?: () => void }).unref?.();
    return subscription;
  }

  /** The topics this subscription reads now. */
  get topics(): string[] {
    return [...this.#topics.keys()];
  }

  /**
   * Subscribes to matching topics not yet followed. The first pass fails
   * loudly (the caller learns at once that the pattern cannot be served); later
   * passes report through `onError` and try again at the next tick.
   */
  #refresh(from: StartFrom, first: boolean): Promise<void> {
    this.#refreshing ??= (async () => {
      try {
        const topics = await this.#client.listTopics();
        const present = new Set(topics.map((topic) => topic.name));
        // Topics deleted since: the broker ended their subscriptions; end them here too, so that a
        // reconnect does not revive one on a topic created again under the same name.
        for (const [name, subscribing] of this.#topics) {
          if (present.has(name)) continue;
          this.#topics.delete(name);
          void subscribing.then((subscription) => subscription?.close()).catch(() => undefined);
        }
        const started: Promise<Subscription | null>[] = [];
        for (const { name } of topics) {
          if (this.#closed || this.#topics.has(name) || !matchesTopicPattern(this.#pattern, name)) continue;
          const subscribing = this.#client.subscribe(name, { ...this.#options, from }, this.#handler).then(
            (subscription) => subscription,
            (error: unknown) => {
              this.#topics.delete(name); // tried again at the next refresh
              if (first) throw error;
              this.#client.onError(
                new BrokerError(
                  'INTERNAL',
                  `pattern ${this.#pattern}: cannot subscribe to ${name}: ${String(error)}`,
                  {
                    cause: error,
                  },
                ),
              );
              return null;
            },
          );
          this.#topics.set(name, subscribing);
          started.push(subscribing);
        }
        await Promise.all(started);
      } catch (error) {
        if (first) throw error;
      } finally {
        this.#refreshing = null;
      }
    })();
    return this.#refreshing;
  }

  /**
   * Swaps the WASM filter of every matching topic's subscription (see
   * Subscription.setFilter); topics found from now on start with the new one.
   */
  setFilter(filter: WasmFilterOptions): Promise<void> {
    try {
      wasmFilterText(filter);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    const swap = this.#swapping.then(async () => {
      if (this.#closed)
        throw new BrokerError('SUBSCRIPTION_NOT_FOUND', `the subscription to ${this.#pattern} is closed`);
      // Only a WASM filter swaps (as the broker says for each topic): refused here too when no topic matches yet.
      const current = this.#options.filter as { wasm?: unknown } | null | undefined;
      if (typeof current !== 'object' || current === null || typeof current.wasm !== 'string')
        throw new BrokerError(
          'INVALID_REQUEST',
          `the subscription to ${this.#pattern} has no WASM filter; only a WASM filter can be swapped`,
        );
      // A refresh under way subscribes with the options it started with: let it finish first.
      await this.#refreshing?.catch(() => undefined);
      const started = (await Promise.all(this.#topics.values())).filter(
        (subscription) => subscription != null,
      );
      let switched = false;
      for (const subscription of started) {
        try {
          await subscription.setFilter(filter);
        } catch (error) {
          // A topic deleted meanwhile has no subscription to swap; anything else stops the swap.
          if (isBrokerError(error, 'SUBSCRIPTION_NOT_FOUND')) continue;
          throw error; // before the first switch nothing changed: the pattern keeps its filter
        }
        if (!switched) {
          // From the first switch on, topics found later start with the new filter.
          this.#options = { ...this.#options, filter };
          switched = true;
        }
      }
      if (!switched) this.#options = { ...this.#options, filter };
    });
    this.#swapping = swap.catch(() => undefined);
    return swap;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    await this.#refreshing?.catch(() => undefined);
    const subscribing = [...this.#topics.values()];
    this.#topics.clear();
    // Each one that started closes, whichever others failed to start or to close.
    const started = await Promise.allSettled(subscribing);
    await Promise.allSettled(
      started.map((result) => (result.status === 'fulfilled' ? result.value?.close() : undefined)),
    );
  }
}
