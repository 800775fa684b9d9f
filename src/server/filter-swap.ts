/**
 * Swapping a durable subscription's WASM filter for another version (or
 * another filter) without dropping or duplicating a delivery.
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
 * Only a WASM filter can be swapped, and only for another WASM filter: a
 * dialect or CESQL filter is compiled into each member at join time.
 */
import type { Broker } from '../broker/index.js';
import { BrokerError, type SubscriptionDescription } from '../protocol/index.js';
import { filterFailure, wasmFilterOf, type Subscription } from './connection-state.js';
import type { WasmFilters } from './wasm-filters.js';

/**
 * Replaces durable subscription `name`'s WASM filter by `filter` (JSON text,
 * `{"wasm": "name@version", "onTrap"?: …}`). Throws INVALID_REQUEST unless
 * both are WASM filters, SUBSCRIPTION_NOT_FOUND, or the new filter's load
 * failure (INVALID_REQUEST for an unknown one, FILTER_FAILED).
 */
export async function swapSubscriptionFilter(
  broker: Broker,
  wasmFilters: WasmFilters,
  name: string,
  filter: string,
): Promise<SubscriptionDescription> {
  const current = broker.subscriptions.describe(name);
  if (wasmFilterOf(current.filter) === null)
    throw new BrokerError(
      'INVALID_REQUEST',
      `subscription "${name}" has no WASM filter; only a WASM filter can be swapped (create another subscription)`,
    );
  const spec = wasmFilterOf(filter);
  if (spec === null)
    throw new BrokerError(
      'INVALID_REQUEST',
      'a WASM filter is swapped only for another: {"wasm": "name@version", "onTrap"?: "skip" | "dead-letter" | "disable"}',
    );
  let id: string;
  try {
    id = await wasmFilters.prepare(spec);
  } catch (error) {
    throw filterFailure(error);
  }
  // Stored pinned: a bare name means the newest version now, not whichever is newest after a restart.
  const pinned = { wasm: id.split('#')[0], ...(spec.onTrap === 'skip' ? {} : { onTrap: spec.onTrap }) };
  return broker.subscriptions.setFilter(name, JSON.stringify(pinned));
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
