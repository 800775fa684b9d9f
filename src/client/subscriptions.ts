/**
 * The client's subscriptions to single topics: one broker-side subscription
 * per partition, Deliver frames routed to their handler in offset order, one
 * handler call at a time, with a credit sent back as each stored batch is
 * handled (so a slow handler slows the broker instead of buffering without
 * bound), and after a reconnect each partition subscribed again from where
 * its handler got to. A WASM filter can be swapped for another version
 * while the subscription runs (`setFilter`). Pattern subscriptions
 * (pattern-subscription.ts) are made of these.
 */
import { fromEventFields } from '../events/index.js';
import {
  BrokerError,
  decodeEventBatch,
  forEachStoredBatch,
  isKept,
  type MessageOf,
  type StartPosition,
  type StoredBatch,
  type EventFields,
  type TopicDescription,
} from '../protocol/index.js';
import type {
  DeliveredEvent,
  StartFrom,
  SubscribeOptions,
  Subscription,
  WasmFilterOptions,
} from './client.js';
import type { Lz4Codec } from './compression.js';
import type { Connection } from './connection.js';

type Handler = (delivered: DeliveredEvent) => void | Promise<void>;

/** What the subscriptions need from the client. */
export interface SubscriptionsClient {
  /** The current connection, open or not: a reconnect replaces it. */
  connection(): Connection;
  /** Resolves once connected (at once when the connection is up), or rejects with NOT_CONNECTED. */
  ready(): Promise<Connection>;
  describeTopic(name: string): Promise<TopicDescription>;
  /** Hands an error to the application (the client's onError). */
  reportError(error: BrokerError): void;
  /** A broker-side subscription id not used on the connection yet. */
  nextSubscriptionId(): number;
}

interface SubscriptionState {
  readonly topic: string;
  readonly partitions: readonly number[];
  readonly credits: number;
  readonly from: StartFrom;
  /** The filters as JSON, '' for none; a swap (setFilter) replaces it, for resuming with the new one. */
  filter: string;
  readonly handler: Handler;
  /** Next offset per partition once something was handled: where a reconnect resumes. */
  readonly resumeFrom: Map<number, number>;
  /** Broker-side subscription ids on the current connection, one per partition. */
  readonly brokerIds: number[];
  /** The connection `brokerIds` were subscribed on. */
  subscribedOn: Connection | null;
  /** Handler calls in order; credits go back as batches are handled. */
  queue: Promise<void>;
  /** Filter swaps and resubscribing after a reconnect, one at a time (see #exclusive). */
  changes: Promise<void>;
  closed: boolean;
}

const trapPolicies = ['skip', 'dead-letter', 'disable'] as const;

/** A WASM filter to swap in, as the JSON text the protocol carries; misuse is a TypeError. */
export function wasmFilterText(filter: WasmFilterOptions): string {
  if (typeof filter !== 'object' || filter === null || typeof filter.wasm !== 'string' || filter.wasm === '')
    throw new TypeError('a WASM filter is { wasm: "name@version", onTrap? }');
  const { wasm, onTrap } = filter;
  if (onTrap !== undefined && !(trapPolicies as readonly string[]).includes(onTrap))
    throw new TypeError(`onTrap is one of ${trapPolicies.join(', ')}, not ${JSON.stringify(onTrap)}`);
  // Absent, a new filter gets `skip` and a swapped one keeps the policy it had.
  return JSON.stringify(onTrap === undefined ? { wasm } : { wasm, onTrap });
}

/** A start position as the protocol carries it. */
export function startPositionOf(from: StartFrom): StartPosition {
  if (from === 'earliest' || from === 'latest') return { kind: from, value: 0 };
  if ('offset' in from) return { kind: 'offset', value: from.offset };
  return { kind: 'time', value: typeof from.time === 'number' ? from.time : from.time.getTime() };
}

/** A handler's error as the client reports it: the application's, not the subscription's. */
export function handlerFailure(event: DeliveredEvent, error: unknown): BrokerError {
  return new BrokerError(
    'INTERNAL',
    `subscription handler threw at offset ${event.offset}: ${String(error)}`,
    {
      cause: error,
    },
  );
}

/** Adds to `into` the events of one stored batch, from `skipBelow` on, and only those set in `kept` when given. */
export function decodeStoredBatch(
  lz4: Lz4Codec | null,
  batch: StoredBatch,
  topic: string,
  partition: number,
  skipBelow: number,
  into: DeliveredEvent[],
  kept?: Uint8Array,
): void {
  let block = batch.events;
  if (batch.compression === 'lz4') {
    if (lz4 === null)
      throw new BrokerError('INTERNAL', 'an LZ4-compressed batch arrived but this client has no LZ4 codec');
    block = lz4.uncompress(block);
  }
  const events = decodeEventBatch(block);
  for (let i = 0; i < events.length; i++) {
    const offset = batch.baseOffset + i;
    if (offset >= skipBelow && (kept === undefined || isKept(kept, i)))
      into.push({ topic, partition, offset, event: fromEventFields(events[i] as EventFields) });
  }
}

export class Subscriptions {
  readonly #client: SubscriptionsClient;
  readonly #lz4: Lz4Codec | null;
  #subscriptions = new Set<SubscriptionState>();
  /** Broker-side subscription id → the subscription and partition it reads. */
  #routes = new Map<
    number,
    {
      readonly state: SubscriptionState;
      readonly partition: number;
      /** Events below this offset are skipped: the broker sends whole batches, which may start earlier. */
      readonly skipBelow: number;
      /** Batches handled whose credit has not gone back yet (see returnCredit). */
      owed: number;
    }
  >();
  constructor(client: SubscriptionsClient, lz4: Lz4Codec | null) {
    this.#client = client;
    this.#lz4 = lz4;
  }

  /** See EddyClient.subscribe: one topic (not a pattern), `credits` already checked. */
  async subscribe(
    topic: string,
    options: SubscribeOptions,
    credits: number,
    handler: Handler,
  ): Promise<Subscription> {
    const partitions =
      options.partition === undefined
        ? (await this.#client.describeTopic(topic)).partitions.map((p) => p.partition)
        : [options.partition];
    const state: SubscriptionState = {
      topic,
      partitions,
      credits,
      from: options.from ?? 'latest',
      filter: options.filter === undefined ? '' : JSON.stringify(options.filter),
      handler,
      resumeFrom: new Map(),
      brokerIds: [],
      subscribedOn: null,
      queue: Promise.resolve(),
      changes: Promise.resolve(),
      closed: false,
    };
    this.#subscriptions.add(state);
    try {
      await this.#subscribeOn(await this.#client.ready(), state);
    } catch (error) {
      // Partitions subscribed before the failure must not keep delivering to a subscription that was refused.
      await this.#abandon(state);
      throw error;
    }
    return {
      close: async () => {
        if (state.closed) return;
        await this.#abandon(state);
        await state.queue;
      },
      setFilter: (filter) => {
        let text: string;
        try {
          text = wasmFilterText(filter);
        } catch (error) {
          return Promise.reject(error as Error);
        }
        return this.#exclusive(state, () => this.#setFilter(state, text));
      },
    };
  }

  /** Runs `task` after the subscription's earlier swaps and resubscriptions have settled. */
  #exclusive<T>(state: SubscriptionState, task: () => Promise<T>): Promise<T> {
    const run = state.changes.then(task);
    state.changes = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * Swaps the filter of every partition's broker-side subscription
   * (UpdateSubscription). The first one loads the filter on the broker: if it
   * fails, nothing changed. Once one partition has switched, a reconnect
   * resumes every partition with the new filter.
   */
  async #setFilter(state: SubscriptionState, filter: string): Promise<void> {
    if (state.closed)
      throw new BrokerError('SUBSCRIPTION_NOT_FOUND', `the subscription to ${state.topic} is closed`);
    // Not waiting for a reconnect here: resubscribing on the new connection waits for this swap.
    const connection = this.#client.connection();
    if (!connection.isOpen || connection !== state.subscribedOn)
      throw new BrokerError(
        'NOT_CONNECTED',
        `the subscription to ${state.topic} is not connected; swap again once it has resumed`,
      );
    const [first, ...others] = [...state.brokerIds];
    if (first === undefined) return;
    await connection.request({ type: 'UpdateSubscription', subscriptionId: first, filter });
    state.filter = filter;
    await Promise.all(
      others.map((id) => connection.request({ type: 'UpdateSubscription', subscriptionId: id, filter })),
    );
  }

  /** Subscribes everything again on a reconnect's new `connection`, each partition from where its handler got to. */
  async resumeOn(connection: Connection): Promise<void> {
    this.#routes.clear();
    for (const subscription of [...this.#subscriptions]) {
      try {
        await this.#exclusive(subscription, () => this.#subscribeOn(connection, subscription));
      } catch (error) {
        // Its topic was deleted, or retention passed where it was: it cannot resume. Others can.
        await this.#abandon(subscription);
        this.#client.reportError(
          new BrokerError(
            'INTERNAL',
            `subscription to ${subscription.topic} could not resume: ${String(error)}`,
            {
              cause: error,
            },
          ),
        );
      }
    }
  }

  /** The client is closing: no handler is called any more. The broker learns it as the connection closes. */
  closeAll(): void {
    for (const state of this.#subscriptions) state.closed = true;
    this.#subscriptions.clear();
  }

  /** Ends a subscription on this side and, where the connection is up, on the broker's. */
  async #abandon(state: SubscriptionState): Promise<void> {
    state.closed = true;
    this.#subscriptions.delete(state);
    const connection = this.#client.connection();
    for (const id of state.brokerIds.splice(0)) {
      this.#routes.delete(id);
      if (connection.isOpen)
        await connection.request({ type: 'Unsubscribe', subscriptionId: id }).catch(() => undefined);
    }
  }

  /** Subscribes each partition on `connection`, from where its handler got to, or from the start position. */
  async #subscribeOn(connection: Connection, state: SubscriptionState): Promise<void> {
    state.brokerIds.length = 0;
    state.subscribedOn = connection;
    for (const partition of state.partitions) {
      const id = this.#client.nextSubscriptionId();
      const resume = state.resumeFrom.get(partition);
      const from = state.from;
      const skipBelow = resume ?? (typeof from === 'object' && 'offset' in from ? from.offset : 0);
      this.#routes.set(id, { state, partition, skipBelow, owed: 0 });
      state.brokerIds.push(id);
      await connection.request({
        type: 'Subscribe',
        subscriptionId: id,
        topic: state.topic,
        partition,
        start: resume === undefined ? startPositionOf(state.from) : { kind: 'offset', value: resume },
        credits: state.credits,
        filter: state.filter,
      });
    }
  }

  /** A Deliver frame: its events go to their subscription's handler, queued behind the ones before. */
  deliver(message: MessageOf<'Deliver'>): void {
    const route = this.#routes.get(message.subscriptionId);
    if (route === undefined || route.state.closed) return;
    const { state, skipBelow } = route;
    const delivered: DeliveredEvent[] = [];
    try {
      forEachStoredBatch(message.batch, (batch) => {
        decodeStoredBatch(
          this.#lz4,
          batch,
          message.topic,
          message.partition,
          skipBelow,
          delivered,
          message.kept,
        );
      });
    } catch (error) {
      this.#client.reportError(
        error instanceof BrokerError ? error : new BrokerError('INTERNAL', String(error)),
      );
      // The batch is skipped; its credit goes back so the subscription does not stall.
      const connection = this.#client.connection();
      if (connection.isOpen)
        connection.send({ type: 'Credit', subscriptionId: message.subscriptionId, credits: 1 });
      return;
    }
    const connection = this.#client.connection();
    const brokerId = message.subscriptionId;
    state.queue = state.queue.then(async () => {
      for (const event of delivered) {
        if (state.closed) return;
        try {
          const handled = state.handler(event);
          // Only a promise is awaited: a synchronous handler costs no microtask per event.
          if (handled !== undefined) await handled;
        } catch (error) {
          // The application's error, not the subscription's: report it and go on with the next event.
          this.#client.reportError(handlerFailure(event, error));
        }
        state.resumeFrom.set(event.partition, event.offset + 1);
      }
      if (!state.closed && connection.isOpen) returnCredit(connection, route, brokerId);
    });
  }
}

/**
 * Gives back a handled batch's credit, a quarter of the subscription's credits at a time: a
 * consumer keeping up sends one Credit frame per few batches rather than one per batch, and at
 * most a quarter of the credits (less one) is held back from the broker.
 */
function returnCredit(
  connection: Connection,
  route: { readonly state: SubscriptionState; owed: number },
  brokerId: number,
): void {
  route.owed++;
  if (route.owed < Math.max(1, Math.floor(route.state.credits / 4))) return;
  connection.send({ type: 'Credit', subscriptionId: brokerId, credits: route.owed });
  route.owed = 0;
}
