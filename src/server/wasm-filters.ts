/**
 * WASM filters on subscriptions: a subscription names an uploaded filter
 * (`{ "wasm": "name@version" }`, or a bare name for its latest version, pinned
 * when the subscription is made), the module is loaded once into the node's
 * filter sandbox — a thread of its own with a time budget per batch, so a
 * filter that loops or traps never stalls the gateway — and each stored batch
 * is run through it before delivery.
 */
import { FilterSandbox, type FilterRegistry } from '../filters/index.js';
import { BrokerError } from '../protocol/index.js';

/** Which events of a batch a filter kept: null for all, 'none', or a bitmap (bit i, LSB first). */
export type Kept = Uint8Array | null | 'none';

export class WasmFilters {
  readonly #registry: FilterRegistry;
  readonly #sandbox = new FilterSandbox();
  /** Refs being loaded or loaded, so concurrent subscriptions load a module once. */
  readonly #loading = new Map<string, Promise<string>>();

  constructor(registry: FilterRegistry) {
    this.#registry = registry;
  }

  /** Loads the filter `ref` names (the latest version for a bare name); resolves with its pinned `name@version`. */
  prepare(ref: string): Promise<string> {
    let loading = this.#loading.get(ref);
    if (loading === undefined) {
      loading = (async () => {
        const stored = await this.#registry.get(ref);
        if (stored.kind !== 'filter')
          throw new BrokerError(
            'INVALID_REQUEST',
            `${stored.ref} is a transform; a subscription takes a filter`,
          );
        if (this.#sandbox.status(stored.ref) === undefined)
          await this.#sandbox.load(stored.ref, stored.bytes, { kind: 'filter', onTrap: 'skip' });
        return stored.ref;
      })();
      loading.catch(() => this.#loading.delete(ref));
      this.#loading.set(ref, loading);
    }
    return loading;
  }

  /** Runs the loaded filter `id` over one stored batch. */
  async keep(id: string, batch: Uint8Array): Promise<Kept> {
    const outcome = await this.#sandbox.runStoredBatch(id, batch);
    if (outcome.kind !== 'filter') throw new BrokerError('INTERNAL', `${id} did not run as a filter`);
    if (outcome.keptCount === 0) return 'none';
    return outcome.keptCount === outcome.eventCount ? null : outcome.keep;
  }

  close(): Promise<void> {
    return this.#sandbox.close();
  }
}
