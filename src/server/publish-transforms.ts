/**
 * WebAssembly transforms run on publish (docs/filters.md#on-topics): the
 * transform attached to a topic (src/broker/topic-transforms.ts) and the ones
 * routing rules name, run in the node's filter sandbox before anything is
 * stored, so the log holds the transform's output and never the original.
 *
 * Each owner — a topic's attachment, a routing rule's copies to a topic — runs
 * an instance of its own, so that whatever one owner's publishers send stays
 * theirs. Events a transform fails on are answered to their publisher (the
 * batch refused under `reject`, the event left out under `skip`) and never
 * disable it; a transform that cannot run at all (quarantined past its time
 * budget, its module gone) refuses every publish it owns with FILTER_FAILED
 * until it is attached again: a topic that masks data never stores it unmasked.
 */
import {
  TransformEventError,
  type PublishTransforms as BrokerPublishTransforms,
  type TopicTransformSpec,
  type TopicTransforms,
  type TransformedBlock,
} from '../broker/index.js';
import { isFilterError } from '../filters/index.js';
import { BrokerError, isBrokerError, type Compression } from '../protocol/index.js';
import { filterFailure } from './connection-state.js';
import type { WasmFilters } from './wasm-filters.js';

/** Errors of the request or the node itself, which keep their own code rather than become FILTER_FAILED. */
const passedThrough = ['SHUTTING_DOWN', 'BATCH_TOO_LARGE', 'MALFORMED_FRAME', 'STORAGE_FULL'] as const;

export class PublishTransforms implements BrokerPublishTransforms {
  readonly #store: TopicTransforms;
  readonly #wasm: WasmFilters;
  /** Sandbox ids by owner and pinned ref, so a publish resolves its instance without reading the registry. */
  readonly #loaded = new Map<string, Promise<string>>();

  constructor(store: TopicTransforms, wasm: WasmFilters) {
    this.#store = store;
    this.#wasm = wasm;
  }

  of(topic: string): TopicTransformSpec | null {
    return this.#store.of(topic);
  }

  /**
   * Loads (again, if it had been stopped) the transform `ref` names for
   * `owner` and resolves with its pinned `name@version`. INVALID_REQUEST for
   * an unknown filter or one that is not a transform, FILTER_FAILED for one
   * that does not load.
   */
  async pin(ref: string, owner: string): Promise<string> {
    try {
      const { pinned, id } = await this.#wasm.prepareTransform(ref, owner);
      this.#loaded.set(key(owner, pinned), Promise.resolve(id));
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
    owner: string,
  ): Promise<TransformedBlock> {
    // Copied now: the caller's buffer may be reused once this returns.
    return this.#run(transform, events.slice(), compression, topic, owner);
  }

  async #run(
    { transform, onTrap }: TopicTransformSpec,
    block: Uint8Array,
    compression: Compression,
    topic: string,
    owner: string,
  ): Promise<TransformedBlock> {
    let outcome;
    try {
      outcome = await this.#wasm.transform(await this.#load(transform, owner), block, compression, topic);
    } catch (error) {
      if (isFilterError(error, 'FILTER_SANDBOX_CLOSED'))
        throw new BrokerError('SHUTTING_DOWN', 'the broker is shutting down; publish again later', {
          cause: error,
        });
      const failure = filterFailure(error);
      if (!(failure instanceof BrokerError) || passedThrough.some((name) => isBrokerError(failure, name)))
        throw failure;
      throw new BrokerError(
        'FILTER_FAILED',
        `the transform ${transform} on "${topic}" cannot run, so nothing was stored: ${failure.message}`,
        { cause: error },
      );
    }
    const failed = outcome.failures[0];
    if (failed !== undefined && onTrap === 'reject')
      throw new TransformEventError(
        `the transform ${transform} on "${topic}" failed on event ${failed.index} of the batch, so nothing was stored: ${failed.error.message}`,
        failed.index,
        failed.error,
      );
    return { events: outcome.block, eventCount: outcome.outputCount };
  }

  #load(ref: string, owner: string): Promise<string> {
    let loading = this.#loaded.get(key(owner, ref));
    if (loading === undefined) {
      loading = this.#wasm.prepareTransform(ref, owner).then(({ id }) => id);
      loading.catch(() => this.#loaded.delete(key(owner, ref)));
      this.#loaded.set(key(owner, ref), loading);
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

const key = (owner: string, ref: string): string => `${owner}\u0000${ref}`;
