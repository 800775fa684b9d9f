/**
 * Swapping a subscription's WASM filter for another version (or another
 * filter) without dropping or duplicating a delivery: a durable
 * subscription's (`SetSubscriptionFilter`, `PATCH /v1/subscriptions/{name}`)
 * or a connection's own plain one (`UpdateSubscription`).
 *
 * The swap is a change of the subscription's definition, nothing else: the
 * new filter is loaded into the sandbox first (so it cannot fail to load
 * later), the definition is stored durably, then replaced in memory in one
 * assignment (DurableSubscriptions.setFilter). Each member reads the
 * definition when it starts filtering a batch (`wasmFilterNow`, from the
 * delivery pump), and a cursor has one batch in the sandbox at a time; so on
 * each partition every batch is filtered by exactly one version, the batches
 * before the switch by the old one and every one after by the new. Positions
 * and commits do not change, so no batch is skipped or sent twice. A batch
 * already in the sandbox when the swap is made still goes out as the old
 * version filtered it.
 *
 * A plain subscription works the same way without the storing: the new
 * filter is loaded first, then `subscription.wasm` (the sandbox id the pump
 * reads when it starts filtering each batch) is replaced in one assignment.
 * Each of its cursors (one per partition) has at most one batch in the
 * sandbox, taken with the id in force when that batch started, and cursor
 * positions are moved only by deliveries, never by the swap: per partition,
 * every batch is filtered by exactly one version, the old one before the
 * switch and the new one after, and none is skipped or sent twice. Swaps of
 * one subscription are applied in the order they came, so the last one asked
 * for is the one in force, whichever module loads faster.
 *
 * Only a WASM filter can be swapped, and only for another WASM filter: a
 * dialect or CESQL filter is compiled into each member at join time (and into
 * a plain subscription when it is made).
 */
import type { Broker } from '../broker/index.js';
import { BrokerError, type SubscriptionDescription } from '../protocol/index.js';
import { checkDeadLetterTopic, filterFailure, wasmFilterOf, type Subscription } from './connection-state.js';
import type { TrapPolicy } from '../filters/index.js';
import { policyOf, type WasmFilterSpec, type WasmFilters } from './wasm-filters.js';

/**
 * The longest filter text a swap accepts. A WASM filter is a name of at most
 * 128 characters, a version and a policy: anything near this is not one.
 */
export const SWAP_FILTER_LENGTH_MAX = 1024;

/** The WASM filter a swap asks for, or INVALID_REQUEST. */
/** The spec of a filter to swap in; without an `onTrap` it keeps `current`, the policy in force. */
function swapSpec(filter: string, current: TrapPolicy): WasmFilterSpec {
  if (filter.length > SWAP_FILTER_LENGTH_MAX)
    throw new BrokerError(
      'INVALID_REQUEST',
      `a filter to swap in is at most ${SWAP_FILTER_LENGTH_MAX} characters, not ${filter.length}`,
    );
  const spec = wasmFilterOf(filter);
  if (spec === null)
    throw new BrokerError(
      'INVALID_REQUEST',
      'a WASM filter is swapped only for another: {"wasm": "name@version", "onTrap"?: "skip" | "dead-letter" | "disable"}',
    );
  return (JSON.parse(filter) as Record<string, unknown>)['onTrap'] === undefined
    ? { ...spec, onTrap: current }
    : spec;
}

/** Loads a filter to swap in; its failure as the client gets it (INVALID_REQUEST for an unknown one). */
async function prepareSwap(wasmFilters: WasmFilters, spec: WasmFilterSpec): Promise<string> {
  try {
    return await wasmFilters.prepare(spec);
  } catch (error) {
    throw filterFailure(error);
  }
}

/**
 * Replaces durable subscription `name`'s WASM filter by `filter` (JSON text,
 * `{"wasm": "name@version", "onTrap"?: …}`). Throws INVALID_REQUEST unless
 * both are WASM filters, SUBSCRIPTION_NOT_FOUND, or the new filter's load
 * failure (INVALID_REQUEST for an unknown one, FILTER_FAILED).
 */
export function swapSubscriptionFilter(
  broker: Broker,
  wasmFilters: WasmFilters,
  name: string,
  filter: string,
): Promise<SubscriptionDescription> {
  // In the order asked, whichever module loads faster: the last swap asked for is the one in force.
  let swaps = durableSwaps.get(broker);
  if (swaps === undefined) durableSwaps.set(broker, (swaps = new Map()));
  const queue = swaps;
  const swap = (queue.get(name) ?? Promise.resolve()).then(() => swapNow(broker, wasmFilters, name, filter));
  const settled = swap.then(
    () => undefined,
    () => undefined,
  );
  queue.set(name, settled);
  void settled.then(() => {
    if (queue.get(name) === settled) queue.delete(name);
  });
  return swap;
}

/** Each durable subscription's last swap, settled or not, per broker: the next one waits for it. */
const durableSwaps = new WeakMap<Broker, Map<string, Promise<void>>>();

async function swapNow(
  broker: Broker,
  wasmFilters: WasmFilters,
  name: string,
  filter: string,
): Promise<SubscriptionDescription> {
  const current = wasmFilterOf(broker.subscriptions.describe(name).filter);
  if (current === null)
    throw new BrokerError(
      'INVALID_REQUEST',
      `subscription "${name}" has no WASM filter; only a WASM filter can be swapped (create another subscription)`,
    );
  const spec = swapSpec(filter, current.onTrap);
  const id = await prepareSwap(wasmFilters, spec);
  // Stored pinned: a bare name means the newest version now, not whichever is newest after a restart.
  const pinned = { wasm: id.split('#')[0], ...(spec.onTrap === 'skip' ? {} : { onTrap: spec.onTrap }) };
  return broker.subscriptions.setFilter(name, JSON.stringify(pinned));
}

/** Each plain subscription's last swap, settled or not: the next one waits for it. */
const plainSwaps = new WeakMap<Subscription, Promise<void>>();

/**
 * Replaces plain subscription `subscription`'s WASM filter by `filter` (JSON
 * text, as for a durable subscription), once the new one is loaded, unless
 * the subscription ended meanwhile (`live()` false: SUBSCRIPTION_NOT_FOUND).
 * Rejects with INVALID_REQUEST for a member of a durable subscription, a
 * subscription without a WASM filter, a filter that is not one, or an unknown
 * one; FILTER_FAILED for one that fails to load. Nothing changes on a rejection.
 */
export function swapPlainFilter(
  subscription: Subscription,
  wasmFilters: WasmFilters,
  filter: string,
  live: () => boolean,
): Promise<void> {
  let spec: WasmFilterSpec;
  try {
    if (subscription.durable)
      throw new BrokerError(
        'INVALID_REQUEST',
        `subscription ${subscription.id} is a member of a durable subscription, whose filter is its own: swap it with SetSubscriptionFilter`,
      );
    // Null before the subscription's own filter has loaded, too: there is nothing to swap yet.
    if (subscription.wasm === null)
      throw new BrokerError(
        'INVALID_REQUEST',
        `subscription ${subscription.id} has no WASM filter; only a WASM filter can be swapped (subscribe again to change it)`,
      );
    spec = swapSpec(filter, policyOf(subscription.wasm));
    checkDeadLetterTopic(subscription.topic, spec);
  } catch (error) {
    return Promise.reject(error as Error);
  }
  const swap = (plainSwaps.get(subscription) ?? Promise.resolve()).then(async () => {
    const id = await prepareSwap(wasmFilters, spec);
    if (!live()) throw new BrokerError('SUBSCRIPTION_NOT_FOUND', `subscription ${subscription.id} ended`);
    // The switch: the next batch any cursor starts filtering uses this id (see the pump's #filterInSandbox).
    subscription.wasm = id;
  });
  plainSwaps.set(
    subscription,
    swap.catch(() => undefined),
  );
  return swap;
}

/** The filter text a member last resolved, and the sandbox id it resolved to. */
const resolved = new WeakMap<Subscription, { readonly filter: string; readonly id: string }>();

/**
 * The sandbox id to filter the subscription's next batch with: a plain
 * subscription's own, a durable member's from its subscription's definition
 * now (resolved once per swap; the new filter is loaded already, so this
 * answers within a microtask). Sets `subscription.wasm` to it.
 */
export function wasmFilterNow(
  subscription: Subscription,
  wasmFilters: WasmFilters,
): string | Promise<string> {
  const wasm = subscription.wasm as string;
  const group = subscription.membership?.group;
  if (group === undefined) return wasm;
  const filter = group.definition.filter;
  const known = resolved.get(subscription);
  if (known?.filter === filter) return known.id;
  const spec = wasmFilterOf(filter);
  if (spec === null) return wasm; // swaps are WASM to WASM only: nothing else changes under a member
  return wasmFilters.prepare(spec).then((id) => {
    resolved.set(subscription, { filter, id });
    subscription.wasm = id;
    return id;
  });
}
