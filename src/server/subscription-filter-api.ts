/**
 * `PATCH /v1/subscriptions/{name}` with `{"filter": {"wasm": "name@version", "onTrap"?: …}}`:
 * swaps a durable subscription's WASM filter for another version (or another
 * filter) at a batch boundary, without dropping or duplicating a delivery
 * (filter-swap.ts). Answers the subscription's description as
 * `GET /v1/subscriptions/{name}` does, with the new filter.
 */
import type { Broker } from '../broker/index.js';
import { BrokerError } from '../protocol/index.js';
import { swapSubscriptionFilter } from './filter-swap.js';
import { json, parseJsonObject, withBody, pathParameter } from './http-reply.js';
import type { TemplatedApp } from './uws.js';
import type { WasmFilters } from './wasm-filters.js';

export function attachSubscriptionFilterApi(
  app: TemplatedApp,
  broker: Broker,
  wasmFilters: WasmFilters,
  maxBodyBytes: number,
  /** Told of each swap, so members the old version had stopped deliver again (Gateway.filterSwapped). */
  onSwapped: (name: string) => void,
): void {
  app.patch('/v1/subscriptions/:name', (res, req) => {
    const name = pathParameter(req, 0);
    withBody(res, maxBodyBytes, async (body) => {
      const request = parseJsonObject(body);
      const unknown = Object.keys(request).filter((key) => key !== 'filter');
      if (unknown.length > 0)
        throw new BrokerError('INVALID_REQUEST', `only the filter can be changed, not ${unknown.join(', ')}`);
      const filter = request['filter'];
      if (typeof filter !== 'object' || filter === null || Array.isArray(filter))
        throw new BrokerError('INVALID_REQUEST', 'filter must be {"wasm": "name@version", "onTrap"?: …}');
      const swapped = await swapSubscriptionFilter(broker, wasmFilters, name, JSON.stringify(filter));
      onSwapped(name);
      return json(200, {
        name: swapped.name,
        topic: swapped.topic,
        type: swapped.subscriptionType,
        filter: JSON.parse(swapped.filter) as unknown,
        config: swapped.config,
        generation: swapped.generation,
        members: swapped.members,
      });
    });
  });
}
