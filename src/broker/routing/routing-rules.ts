/**
 * The broker's routing rule sets (docs/filters.md#routing-rules): stored one
 * file each under `<dataDir>/routing/`, loaded at open, replaced at runtime.
 *
 * Atomic replace: every rule set in force lives in one immutable snapshot,
 * which a PUT or DELETE swaps whole after its file is durable. A publish
 * takes the snapshot once and computes every copy from it synchronously, so
 * it sees the old rules or the new ones, never a mix.
 *
 * The hot path: a publish to a topic no rule set covers costs one map lookup
 * (`copies` answers null); the event block is read only for covered topics.
 * There, each event is read once in place, and every rule of every covering
 * set is evaluated over it before the next (a `stop` spares the rest of its
 * set): an event's JSON data is parsed at most once per publish, when the
 * first condition reads a data path of it, and never when none does.
 * Copies are never routed again (the broker appends them past this hook), so
 * routing is one hop and cannot loop.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { parseJsonEvent, toEventFields } from '../../events/index.js';
import {
  BrokerError,
  countEventBatch,
  decodeEventBatch,
  encodeEventBatch,
  isKept,
  keptCount,
  type Compression,
  type EventFields,
} from '../../protocol/index.js';
import type { PublishMeta } from '../broker.js';
import {
  InvalidRuleSetError,
  RoutedEvents,
  RuleSet,
  invalidRuleSetId,
  type Destinations,
  type DryRunResult,
  type RoutingRuleSetSpec,
} from './rule-set.js';
import { inflatedBlock } from '../stored-events.js';

/** Most rule sets a broker holds. */
export const RULE_SETS_MAX = 1024;
const FORMAT = 1;

/** One destination's batch of a routed publish. */
export interface RoutedCopy {
  readonly topic: string;
  readonly events: Uint8Array;
  readonly eventCount: number;
  readonly compression: Compression;
  /** The rule's WASM transform (`name@version`), which the broker runs over the copy before storing it; null for none. */
  readonly transform: string | null;
  /** Set by the broker once the destination's own transform ran over the copy: one due later is not transformed again. */
  readonly transformed?: true;
}

/** What `Broker.publish` asks of routing; see `Broker.useRouting`. */
export interface PublishRouting {
  /**
   * The copies a publish to `topic` makes, in their own buffers; null when no
   * rule set covers the topic. Throws TOPIC_NOT_FOUND when an event goes to a
   * topic that does not exist (the publish is refused whole).
   */
  copies(
    topic: string,
    events: Uint8Array,
    meta: PublishMeta,
    topicExists: (name: string) => boolean,
  ): RoutedCopy[] | null;
  /** The topic is gone: forget what was cached about it. */
  topicDeleted(topic: string): void;
}

/** A rule set as the API shows it. */
export interface RuleSetView extends RoutingRuleSetSpec {
  readonly id: string;
  /** 1 on creation, one more on each replace. */
  readonly version: number;
  readonly updatedAt: string;
}

export interface RoutingStats {
  /** Publishes whose events a rule set routed somewhere, and the copies (batches) and events made. */
  readonly routedPublishes: number;
  readonly copies: number;
  readonly events: number;
}

interface Entry {
  readonly rules: RuleSet;
  readonly view: RuleSetView;
}

/** The rule sets covering one topic, and the reader their conditions share over its publishes' events. */
interface Covering {
  /** By id; never empty. */
  readonly sets: readonly RuleSet[];
  /** Knows the data paths of every set in `sets`. */
  readonly events: RoutedEvents;
}

/** Everything in force at one moment; never changed, only replaced. */
class Snapshot {
  readonly entries: ReadonlyMap<string, Entry>;
  /** Topic → what covers it (null: nothing); filled on first publish to the topic. */
  readonly #covering = new Map<string, Covering | null>();

  constructor(entries: ReadonlyMap<string, Entry>) {
    this.entries = entries;
  }

  /** What covers `topic`, or null when no rule set does. */
  covering(topic: string): Covering | null {
    // System topics (`$sys.`) are never routed, whatever pattern a set has.
    if (this.entries.size === 0 || topic.startsWith('$')) return null;
    let found = this.#covering.get(topic);
    if (found === undefined) {
      const sets = [...this.entries.values()]
        .map((entry) => entry.rules)
        .filter((rules) => rules.covers(topic))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      const dataPaths = new Set(sets.flatMap((rules) => rules.dataPaths));
      found = sets.length === 0 ? null : { sets, events: new RoutedEvents([...dataPaths]) };
      this.#covering.set(topic, found);
    }
    return found;
  }

  forget(topic: string): void {
    this.#covering.delete(topic);
  }
}

function invalid(error: InvalidRuleSetError): BrokerError {
  return new BrokerError('INVALID_REQUEST', error.message, { cause: error });
}

export class RoutingRules implements PublishRouting {
  readonly #dir: string;
  #snapshot: Snapshot;
  /** Puts and deletes run one at a time. */
  #queue: Promise<unknown> = Promise.resolve();
  #stats = { routedPublishes: 0, copies: 0, events: 0 };

  private constructor(dir: string, entries: Map<string, Entry>) {
    this.#dir = dir;
    this.#snapshot = new Snapshot(entries);
  }

  /** Loads `<dataDir>/routing/*.json`, clearing temp files a crash left; a file that no longer validates refuses the open (CORRUPT_DATA). */
  static async open(dataDir: string): Promise<RoutingRules> {
    const dir = path.join(dataDir, 'routing');
    await fsp.mkdir(dir, { recursive: true });
    const entries = new Map<string, Entry>();
    for (const file of (await fsp.readdir(dir)).sort()) {
      if (file.startsWith('.tmp-')) {
        await fsp.rm(path.join(dir, file), { force: true });
        continue;
      }
      if (!file.endsWith('.json')) continue;
      const id = file.slice(0, -'.json'.length);
      try {
        const stored = JSON.parse(await fsp.readFile(path.join(dir, file), 'utf8')) as Record<
          string,
          unknown
        >;
        if (stored['format'] !== FORMAT || stored['id'] !== id)
          throw new Error('not a rule set file of format 1');
        const rules = RuleSet.compile(id, { source: stored['source'], rules: stored['rules'] });
        const version = stored['version'];
        const updatedAt = stored['updatedAt'];
        if (!Number.isSafeInteger(version) || typeof updatedAt !== 'string')
          throw new Error('version or updatedAt missing');
        entries.set(id, { rules, view: { id, ...rules.spec, version: version as number, updatedAt } });
      } catch (error) {
        throw new BrokerError(
          'CORRUPT_DATA',
          `routing rule set ${path.join(dir, file)} cannot be loaded: ${(error as Error).message}`,
          { cause: error },
        );
      }
    }
    return new RoutingRules(dir, entries);
  }

  list(): RuleSetView[] {
    return [...this.#snapshot.entries.values()]
      .map((entry) => entry.view)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** The rule set, or null. */
  get(id: string): RuleSetView | null {
    return this.#snapshot.entries.get(id)?.view ?? null;
  }

  stats(): RoutingStats {
    return { ...this.#stats };
  }

  /**
   * Validates `value` (the parsed body: `{source, rules}`), stores it durably
   * and puts it in force in place of any set under `id`, whole. INVALID_REQUEST
   * (its cause an InvalidRuleSetError with path, rule and position) when invalid.
   */
  put(id: string, value: unknown): Promise<{ view: RuleSetView; created: boolean }> {
    let rules: RuleSet;
    try {
      rules = RuleSet.compile(id, value);
    } catch (error) {
      return Promise.reject(error instanceof InvalidRuleSetError ? invalid(error) : error);
    }
    return this.#serially(async () => {
      const previous = this.#snapshot.entries.get(id);
      if (previous === undefined && this.#snapshot.entries.size >= RULE_SETS_MAX)
        throw new BrokerError('INVALID_REQUEST', `the broker holds at most ${RULE_SETS_MAX} rule sets`);
      const view: RuleSetView = {
        id,
        ...rules.spec,
        version: (previous?.view.version ?? 0) + 1,
        updatedAt: new Date().toISOString(),
      };
      await this.#write(id, JSON.stringify({ format: FORMAT, ...view }, null, 2) + '\n');
      const entries = new Map(this.#snapshot.entries);
      entries.set(id, { rules, view });
      this.#snapshot = new Snapshot(entries);
      return { view, created: previous === undefined };
    });
  }

  /** Removes the rule set; false when there was none. */
  delete(id: string): Promise<boolean> {
    return this.#serially(async () => {
      if (!this.#snapshot.entries.has(id)) return false;
      await fsp.rm(this.#file(id), { force: true });
      await syncDirectory(this.#dir);
      const entries = new Map(this.#snapshot.entries);
      entries.delete(id);
      this.#snapshot = new Snapshot(entries);
      return true;
    });
  }

  /**
   * Which rules of the set `id` one event (structured-mode JSON) matches, as
   * a publish would apply them; null when there is no such set.
   */
  dryRun(
    id: string,
    body: Uint8Array | string,
    topicExists: (name: string) => boolean,
  ): (DryRunResult & { missingTopics: string[] }) | null {
    const entry = this.#snapshot.entries.get(id);
    if (entry === undefined) return null;
    const result = entry.rules.dryRun(encodeEventBatch([toEventFields(parseJsonEvent(body))]));
    return { ...result, missingTopics: result.to.filter((topic) => !topicExists(topic)) };
  }

  copies(
    topic: string,
    events: Uint8Array,
    meta: PublishMeta,
    topicExists: (name: string) => boolean,
  ): RoutedCopy[] | null {
    const covering = this.#snapshot.covering(topic);
    if (covering === null) return null;
    const block = inflatedBlock(events, meta.compression);
    // Verified here too: the reader below trusts the block's offsets, and Broker.publish is a library call.
    const count = countEventBatch(block);
    if (count !== meta.eventCount)
      throw new BrokerError(
        'INVALID_REQUEST',
        `event_count says ${meta.eventCount} but the block holds ${count} events`,
      );
    const { sets, events: routed } = covering;
    const destinations: Destinations = new Map();
    routed.open(block);
    try {
      // Event by event, every set over it: the data of each is parsed once, by the first rule that reads it.
      for (let i = 0; i < count; i++) {
        routed.select(i);
        for (let s = 0; s < sets.length; s++) (sets[s] as RuleSet).routeEvent(routed, i, count, destinations);
      }
    } finally {
      routed.close();
    }
    if (destinations.size === 0) return [];
    for (const { topic: destination } of destinations.values()) {
      if (topicExists(destination)) continue;
      const by = sets.find((rules) => rules.spec.rules.some((rule) => rule.to.includes(destination)));
      throw new BrokerError(
        'TOPIC_NOT_FOUND',
        `routing rule set "${by?.id ?? '?'}" sends events of topic "${topic}" to topic "${destination}", ` +
          'which does not exist; nothing was stored (create the topic or change the rule set)',
      );
    }
    let decoded: EventFields[] | null = null;
    const copies: RoutedCopy[] = [];
    for (const { topic: destination, transform, events: bitmap } of destinations.values()) {
      const kept = keptCount(bitmap);
      if (kept === count) {
        // Every event: the publisher's bytes as sent, in a buffer of their own.
        copies.push({
          topic: destination,
          events: events.slice(),
          eventCount: count,
          compression: meta.compression,
          transform,
        });
        continue;
      }
      decoded ??= decodeEventBatch(block);
      const selected = decoded.filter((_, i) => isKept(bitmap, i));
      copies.push({
        topic: destination,
        events: encodeEventBatch(selected),
        eventCount: kept,
        compression: 'none',
        transform,
      });
    }
    this.#stats.routedPublishes++;
    this.#stats.copies += copies.length;
    for (const copy of copies) this.#stats.events += copy.eventCount;
    return copies;
  }

  topicDeleted(topic: string): void {
    this.#snapshot.forget(topic);
  }

  #file(id: string): string {
    if (invalidRuleSetId(id) !== null)
      throw new BrokerError('INVALID_REQUEST', `invalid rule set id "${id}"`);
    return path.join(this.#dir, `${id}.json`);
  }

  /** Temp file, fsync, rename, fsync of the directory: the file is the old one or the new one after a crash. */
  async #write(id: string, text: string): Promise<void> {
    const file = this.#file(id);
    const temp = path.join(this.#dir, `.tmp-${randomBytes(8).toString('hex')}`);
    try {
      const handle = await fsp.open(temp, 'w');
      try {
        await handle.writeFile(text);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fsp.rename(temp, file);
    } catch (error) {
      await fsp.rm(temp, { force: true });
      throw storageError(error);
    }
    await syncDirectory(this.#dir);
  }

  #serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task, task);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await fsp.open(dir, fs.constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function storageError(error: unknown): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new BrokerError('STORAGE_FULL', `storing a routing rule set: ${(error as Error).message}`, {
      cause: error,
    });
  return new BrokerError('STORAGE_FAILED', `storing a routing rule set: ${(error as Error).message}`, {
    cause: error,
  });
}
