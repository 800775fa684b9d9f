/**
 * What the gateway keeps per connection and per subscription, and how a
 * subscription's options become that state: its start offsets and its filter
 * (CESQL or dialects, run here; or an uploaded WASM module, run in the filter
 * sandbox).
 */
import { isFilterError, trapPolicies, type TrapPolicy } from '../filters/index.js';
import { SubscriptionFilter, invalidTopicName, type Membership, type Partition } from '../broker/index.js';
import { BrokerError, isTopicPattern } from '../protocol/index.js';
import type { QuotaBucket } from './publish-quota.js';
import type { QueueDispatcher } from './queue-dispatcher.js';
import type { WasmFilterSpec, WasmFilters } from './wasm-filters.js';

export interface Cursor {
  readonly topic: string;
  readonly partition: number;
  readonly log: Partition;
  nextOffset: number;
  /** A read is on its way from a partition worker; the cursor waits for it. */
  reading: boolean;
  /** The topic's message.ttl.ms: batches stored longer ago are skipped. Null: no limit. */
  readonly ttlMs: number | null;
}

export interface Subscription {
  readonly id: number;
  /** The topic read; for a durable subscription, its topic or pattern (the cursors name the topics). */
  readonly topic: string;
  /** A member of a durable subscription (from its Subscribe, before it has joined too). */
  readonly durable: boolean;
  /** Its place in the durable subscription once joined; null for a plain one. */
  membership: Membership | null;
  /** One per partition read; a durable subscription's change with each rebalance. */
  cursors: Cursor[];
  credits: number;
  /** Which events the consumer wants; null for all. */
  readonly filter: SubscriptionFilter | null;
  /**
   * A WASM filter instead (its sandbox id: the pinned `name@version`, `#<onTrap>` unless `skip`), once
   * loaded; read as each batch starts filtering, so a swap (filter-swap.ts) assigns it between batches.
   */
  wasm: string | null;
  /**
   * The credits it held when its WASM filter failed and its deliveries
   * stopped (credits 0, FILTER_FAILED sent); a swap to another version gives
   * them back and deliveries resume. Null while it runs.
   */
  stoppedByFilter: number | null;
  /** A queue member's priority (higher first). */
  readonly priority: number;
  /** A queue member: the partitions' dispatchers it gets events from. */
  readonly dispatchers: Set<QueueDispatcher>;
  /** Pending Nack redeliveries, cleared when the subscription or its connection ends. */
  readonly nackTimers: Set<NodeJS.Timeout>;
}

export interface Connection {
  readonly id: number;
  handshaken: boolean;
  /** When the upgrade was accepted (performance.now(), monotonic), for the Hello deadline. */
  readonly openedAtMs: number;
  closed: boolean;
  inFlight: number;
  /** Its publish quota's bucket; null when the broker has no quota. */
  readonly publishQuota: QuotaBucket | null;
  malformedFrames: number;
  /** Since when (performance.now()) deliveries have waited for this socket to drain; null while it keeps up. */
  stalledSinceMs: number | null;
  readonly subscriptions: Map<number, Subscription>;
}

/**
 * `{ "wasm": "name[@version]", "onTrap"?: "skip" | "dead-letter" | "disable" }`:
 * the subscription's filter is an uploaded WASM module, run under that failure
 * policy (default `skip`); null for any other filter.
 */
export function wasmFilterOf(filter: string): WasmFilterSpec | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(filter);
  } catch {
    return null; // SubscriptionFilter.parse reports it
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null;
  if (!('wasm' in parsed) || Object.keys(parsed).some((key) => key !== 'wasm' && key !== 'onTrap'))
    return null;
  const { wasm: ref, onTrap = 'skip' } = parsed as { wasm: unknown; onTrap?: unknown };
  if (typeof ref !== 'string')
    throw new BrokerError('INVALID_REQUEST', 'a wasm filter is named by a string, name@version');
  if (!(trapPolicies as readonly unknown[]).includes(onTrap))
    throw new BrokerError('INVALID_REQUEST', `a wasm filter's onTrap is one of ${trapPolicies.join(', ')}`);
  return { ref, onTrap: onTrap as TrapPolicy };
}

/**
 * Refuses `onTrap: "dead-letter"` on a topic whose `<topic>.dlq` cannot be a
 * topic name: dead letters need a topic to go to, so this is refused when the
 * filter is set rather than at the first trap.
 */
export function checkDeadLetterTopic(topic: string, spec: WasmFilterSpec): void {
  const deadLetters = `${topic}.dlq`;
  const invalid = invalidTopicName(deadLetters);
  if (spec.onTrap === 'dead-letter' && !isTopicPattern(topic) && invalid !== null)
    throw new BrokerError(
      'INVALID_REQUEST',
      `onTrap dead-letter needs a dead-letter topic, and "${deadLetters}" cannot be one (${invalid})`,
    );
}

/** The module a `{ "wasm": … }` filter names; null for any other filter. */
export function wasmRefOf(filter: string): string | null {
  return wasmFilterOf(filter)?.ref ?? null;
}

/** A WASM filter's failure as the error a client gets: an unknown filter is the request's fault. */
export function filterFailure(error: unknown): unknown {
  if (!isFilterError(error)) return error;
  if (error.errorName === 'FILTER_NOT_FOUND' || error.errorName === 'FILTER_INVALID_REF')
    return new BrokerError('INVALID_REQUEST', error.message, { cause: error });
  return new BrokerError('FILTER_FAILED', `${error.errorName}: ${error.message}`, { cause: error });
}

/** The topics a subscription reads now. */
export function topicsOf(subscription: Subscription): Set<string> {
  const topics = new Set(subscription.cursors.map((cursor) => cursor.topic));
  if (!subscription.durable) topics.add(subscription.topic);
  return topics;
}

/**
 * Checks a durable subscription's filter when it is created, so that a member
 * joining later cannot fail on it: dialects and CESQL must parse, a WASM
 * filter must exist and load. Throws INVALID_REQUEST or FILTER_FAILED.
 */
export async function checkSubscriptionFilter(filter: string, wasmFilters: WasmFilters): Promise<void> {
  if (filter === '') return;
  const wasm = wasmFilterOf(filter);
  if (wasm === null) {
    SubscriptionFilter.parse(filter);
    return;
  }
  try {
    await wasmFilters.prepare(wasm);
  } catch (error) {
    throw filterFailure(error);
  }
}
