/**
 * WebAssembly transforms run on publish (docs/filters.md#on-topics): the
 * transform attached to a topic (src/broker/topic-transforms.ts) and the ones
 * routing rules name, run in the node's filter sandbox before anything is
 * stored, so the log holds the transform's output and never the original.
 *
 * Failing closed: a transform that cannot run (not loadable, quarantined
 * after a timeout, disabled after too many failures in a row) refuses every
 * publish to its topic with FILTER_FAILED until another version is attached;
 * a topic that masks data never stores it unmasked. A failure on one event
 * refuses the batch under `reject`, and leaves the event out under `skip`.
 */
import type {
  PublishTransforms as BrokerPublishTransforms,
  TopicTransformSpec,
  TopicTransforms,
  TransformedBlock,
} from '../broker/index.js';
import { BrokerError, type Compression } from '../protocol/index.js';
import { filterFailure } from './connection-state.js';
import type { WasmFilters } from './wasm-filters.js';

export class PublishTransforms implements BrokerPublishTransforms {
  readonly #store: TopicTransforms;
  readonly #wasm: WasmFilters;
  /** Loads by pinned ref, so a publish resolves its transform without reading the registry. */
  readonly #loaded = new Map<string, Promise<string>>();

  constructor(store: TopicTransforms, wasm: WasmFilters) {
    this.#store = store;
    this.#wasm = wasm;
  }

  of(topic: string): TopicTransformSpec | null {
    return this.#store.of(topic);
  }

  /**
   * Loads the transform `ref` names (a bare name: its latest version) and
   * resolves with its pinned `name@version`. INVALID_REQUEST for an unknown
   * filter or one that is not a transform, FILTER_FAILED for one that does
   * not load.
   */
  async pin(ref: string): Promise<string> {
    try {
      const pinned = await this.#wasm.prepareTransform(ref);
      this.#loaded.set(pinned, Promise.resolve(pinned));
      return pinned;
    } catch (error) {
      throw filterFailure(error);
    }
  }

  run(
    transform: TopicTransformSpec,
    events: Uint8Array,
    compression: Compression,
    topic: string,
  ): Promise<TransformedBlock> {
    // Copied now: the caller's buffer may be reused once this returns.
    return this.#run(transform, events.slice(), compression, topic);
  }

  async #run(
    { transform, onTrap }: TopicTransformSpec,
    block: Uint8Array,
    compression: Compression,
    topic: string,
  ): Promise<TransformedBlock> {
    let outcome;
    try {
      outcome = await this.#wasm.transform(await this.#load(transform), block, compression, topic);
    } catch (error) {
      const failure = filterFailure(error);
      throw failure instanceof BrokerError
        ? new BrokerError(
            'FILTER_FAILED',
            `the transform ${transform} on "${topic}" cannot run, so nothing was stored: ${failure.message}`,
            { cause: error },
          )
        : failure;
    }
    const failed = outcome.failures[0];
    if (failed !== undefined && onTrap === 'reject')
      throw new BrokerError(
        'FILTER_FAILED',
        `the transform ${transform} on "${topic}" failed on event ${failed.index} of the batch, so nothing was stored: ${failed.error.message}`,
        { cause: failed.error },
      );
    return { events: outcome.block, eventCount: outcome.outputCount };
  }

  #load(ref: string): Promise<string> {
    let loading = this.#loaded.get(ref);
    if (loading === undefined) {
      loading = this.#wasm.prepareTransform(ref);
      loading.catch(() => this.#loaded.delete(ref));
      this.#loaded.set(ref, loading);
    }
    return loading;
  }

  topicDeleted(topic: string): void {
    this.#store
      .delete(topic)
      .catch((error: unknown) =>
        process.emitWarning(
          `the transform of deleted topic "${topic}" was not detached: ${error instanceof Error ? error.message : String(error)}`,
          { code: 'EDDY_TRANSFORM_DETACH_FAILED' },
        ),
      );
  }
}
