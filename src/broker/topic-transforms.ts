/**
 * Which topics run a WebAssembly transform on publish (docs/filters.md#on-topics),
 * one file per topic under `<dataDir>/transforms/`, loaded at open and
 * replaced at runtime:
 *
 *   { "format": 1, "topic": "orders", "transform": "mask-email@2",
 *     "onTrap": "reject", "version": 3, "updatedAt": "…" }
 *
 * The transform is pinned (`name@version`): the server resolves a bare name
 * to the latest version before it is stored here, so a later upload never
 * changes what a topic runs without an explicit attach.
 *
 * Only the bookkeeping lives here; running the module belongs to the
 * server's sandbox (src/server/publish-transforms.ts), which the broker calls
 * through `PublishTransforms`.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { formatFilterRef, parseFilterRef } from '../filters/index.js';
import { TEMP_PREFIX, removeIfPresent, syncDirectory, writeFileDurably } from '../filters/registry/files.js';
import { BrokerError } from '../protocol/index.js';
import { invalidTopicName } from './topic-name.js';

const FORMAT = 1;

/**
 * What a failure of the guest on an event does to a publish: `reject` refuses
 * the whole batch (nothing is stored, the publisher hears FILTER_FAILED and
 * still holds its events), `skip` stores the batch without that event.
 */
export const publishTrapPolicies = ['reject', 'skip'] as const;
export type PublishTrapPolicy = (typeof publishTrapPolicies)[number];

export interface TopicTransformSpec {
  /** `name@version` of an uploaded transform. */
  readonly transform: string;
  readonly onTrap: PublishTrapPolicy;
}

/**
 * What `PublishTransforms.run` rejects with when the transform failed on an
 * event of the batch under `reject`: FILTER_FAILED, for good — the same
 * events fail again. Any other FILTER_FAILED from `run` (the transform cannot
 * run at all: quarantined past its time budget, its module gone) may pass
 * once the transform is attached again.
 */
export class TransformEventError extends BrokerError {
  /** The failing event's index in the batch. */
  readonly index: number;

  constructor(message: string, index: number, cause: unknown) {
    super('FILTER_FAILED', message, { cause });
    this.index = index;
  }
}

/** A topic's transform as the API shows it. */
export interface TopicTransformView extends TopicTransformSpec {
  readonly topic: string;
  /** 1 when first attached, one more on each replace. */
  readonly version: number;
  readonly updatedAt: string;
}

/** Checks a spec as uploaded (parsed JSON); INVALID_REQUEST naming the field otherwise. */
export function parseTopicTransformSpec(value: unknown): { transform: string; onTrap: PublishTrapPolicy } {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new BrokerError('INVALID_REQUEST', 'a topic transform is a JSON object: {"transform", "onTrap"?}');
  const fields = value as Record<string, unknown>;
  for (const key of Object.keys(fields))
    if (key !== 'transform' && key !== 'onTrap')
      throw new BrokerError(
        'INVALID_REQUEST',
        `unknown field "${key}"; a topic transform has transform and onTrap`,
      );
  const transform = fields['transform'];
  if (typeof transform !== 'string')
    throw new BrokerError(
      'INVALID_REQUEST',
      'transform must be a filter reference, "name" or "name@version"',
    );
  try {
    parseFilterRef(transform);
  } catch (error) {
    throw new BrokerError('INVALID_REQUEST', (error as Error).message, { cause: error });
  }
  const onTrap = fields['onTrap'] ?? 'reject';
  if (!publishTrapPolicies.includes(onTrap as PublishTrapPolicy))
    throw new BrokerError('INVALID_REQUEST', `onTrap must be one of ${publishTrapPolicies.join(', ')}`);
  return { transform, onTrap: onTrap as PublishTrapPolicy };
}

function parseStored(topic: string, text: string): TopicTransformView {
  const stored = JSON.parse(text) as Record<string, unknown>;
  if (stored['format'] !== FORMAT || stored['topic'] !== topic)
    throw new Error(`not a topic transform file of format ${FORMAT}`);
  const { transform, onTrap } = parseTopicTransformSpec({
    transform: stored['transform'],
    onTrap: stored['onTrap'],
  });
  const { name, version: pinned } = parseFilterRef(transform);
  const version = stored['version'];
  const updatedAt = stored['updatedAt'];
  if (pinned === null || !Number.isSafeInteger(version) || typeof updatedAt !== 'string')
    throw new Error('transform is not pinned, or version or updatedAt is missing');
  return { topic, transform: formatFilterRef(name, pinned), onTrap, version: version as number, updatedAt };
}

export class TopicTransforms {
  readonly #dir: string;
  /** Replaced whole on every change, so a publish reads one consistent entry. */
  #byTopic: ReadonlyMap<string, TopicTransformView>;
  /** Changes run one at a time. */
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(dir: string, byTopic: Map<string, TopicTransformView>) {
    this.#dir = dir;
    this.#byTopic = byTopic;
  }

  /** Loads `<dataDir>/transforms/*.json`; a file that does not load refuses the open (CORRUPT_DATA). */
  static async open(dataDir: string): Promise<TopicTransforms> {
    const dir = path.join(dataDir, 'transforms');
    await fsp.mkdir(dir, { recursive: true });
    const byTopic = new Map<string, TopicTransformView>();
    for (const file of (await fsp.readdir(dir)).sort()) {
      if (file.startsWith(TEMP_PREFIX)) {
        await removeIfPresent(path.join(dir, file));
        continue;
      }
      if (!file.endsWith('.json')) continue;
      const topic = file.slice(0, -'.json'.length);
      try {
        byTopic.set(topic, parseStored(topic, await fsp.readFile(path.join(dir, file), 'utf8')));
      } catch (error) {
        throw new BrokerError(
          'CORRUPT_DATA',
          `topic transform ${path.join(dir, file)} cannot be loaded: ${(error as Error).message}`,
          { cause: error },
        );
      }
    }
    return new TopicTransforms(dir, byTopic);
  }

  /** The topic's transform, or null: one map lookup, on every publish. */
  of(topic: string): TopicTransformView | null {
    return this.#byTopic.get(topic) ?? null;
  }

  list(): TopicTransformView[] {
    return [...this.#byTopic.values()].sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0));
  }

  /** Stores the spec durably and puts it in force for `topic`, replacing any before it. `transform` must be pinned. */
  put(topic: string, spec: TopicTransformSpec): Promise<{ view: TopicTransformView; created: boolean }> {
    return this.#serially(async () => {
      const file = this.#file(topic);
      if (parseFilterRef(spec.transform).version === null)
        throw new BrokerError('INTERNAL', `the transform of "${topic}" must be pinned to a version`);
      const previous = this.#byTopic.get(topic);
      const view: TopicTransformView = {
        topic,
        transform: spec.transform,
        onTrap: spec.onTrap,
        version: (previous?.version ?? 0) + 1,
        updatedAt: new Date().toISOString(),
      };
      await writeFileDurably(file, JSON.stringify({ format: FORMAT, ...view }, null, 2) + '\n');
      await syncDirectory(this.#dir);
      this.#byTopic = new Map(this.#byTopic).set(topic, view);
      return { view, created: previous === undefined };
    });
  }

  /**
   * Detaches the topic's transform: publishes stop running it at once, the
   * file goes after the changes queued before this one. False when it had none.
   */
  delete(topic: string): Promise<boolean> {
    const file = this.#file(topic);
    const had = this.#forget(topic);
    return this.#serially(async () => {
      await removeIfPresent(file);
      await syncDirectory(this.#dir);
      // A put queued before this one may have put it back meanwhile.
      return this.#forget(topic) || had;
    });
  }

  #forget(topic: string): boolean {
    if (!this.#byTopic.has(topic)) return false;
    const byTopic = new Map(this.#byTopic);
    byTopic.delete(topic);
    this.#byTopic = byTopic;
    return true;
  }

  /** Resolves once every change asked for so far is on disk (or failed). */
  settled(): Promise<void> {
    return this.#queue.then(() => undefined);
  }

  #file(topic: string): string {
    const problem = invalidTopicName(topic);
    if (problem !== null) throw new BrokerError('INVALID_TOPIC_NAME', `"${topic}": ${problem}`);
    return path.join(this.#dir, `${topic}.json`);
  }

  #serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
