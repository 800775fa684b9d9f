/**
 * Durable subscriptions on disk: `<dataDir>/subscriptions/<name>/` holds
 * `subscription.json` (the definition, written once, then only when its filter
 * is swapped, each time whole by a temporary file, fsync and rename) and
 * `state.bin`, the state consumers change as they go: the committed offset of
 * every partition it reads and, for a queue, each partition's unacked events
 * (queue-state.ts). A subscription appears and disappears in one rename, as
 * topics do (topic-store.ts).
 *
 * `state.bin` is preallocated and rewritten in place, in the older of two
 * checksummed slots (slot-file.ts), so an ack or a commit needs no free block
 * and goes on while the disk is full; a crash leaves the old or the new state,
 * never a torn one. Writes of one subscription are coalesced: an ack or a
 * commit arriving while a write is under way goes into the next one, which
 * holds everything asked for until then.
 *
 * Earlier versions kept the state in `offsets.json` and `queue.json` (replaced
 * whole at each commit); they are still read, and the first write of the
 * state moves it into `state.bin` and removes them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { BrokerError } from '../protocol/index.js';
import { syncDirectory } from '../log/index.js';
import { removeIfPresent, storageError } from '../filters/registry/files.js';
import { parseQueueSnapshot, type QueueSnapshot } from './queue-state.js';
import { CoalescedWrites } from './coalesced-writes.js';
import { createSlotFileSync, readSlotFile, SlotFile } from './slot-file.js';
import type { SubscriptionDefinition } from './subscription-config.js';

const STORE_VERSION = 1;
export const STATE_FILE = 'state.bin';
/**
 * Smallest slot of a new state file. A queue's state lists its unacked events
 * (up to max.unacked per partition, about 20 bytes each without an error), so
 * it starts roomier: its file grows only when that is far outgrown.
 */
const STREAM_SLOT_BYTES_MIN = 4096;
const QUEUE_SLOT_BYTES_MIN = 64 * 1024;

/** Committed offsets by partition key (`topic/partition`). */
export type CommittedOffsets = ReadonlyMap<string, number>;

interface StoredDefinition {
  readonly version: number;
  readonly definition: SubscriptionDefinition;
}

/** The record in `state.bin`, as JSON. */
interface StoredState {
  readonly offsets: Record<string, number>;
  /** A queue subscription's per-partition state, by partition key; {} for other types. */
  readonly queue: Record<string, QueueSnapshot>;
}

export interface StoredSubscription {
  readonly definition: SubscriptionDefinition;
  readonly offsets: Map<string, number>;
  /** A queue subscription's per-partition state (queue-state.ts), by partition key. */
  readonly queue: Map<string, QueueSnapshot>;
}

/** One subscription's state: what was last asked to be stored, and the file it goes to. */
class SubscriptionState {
  readonly #file: SlotFile;
  #offsets: Record<string, number>;
  #queue: Record<string, QueueSnapshot>;
  /** Files of the earlier format still on disk, removed once the state is in `state.bin`. */
  #legacy: string[];
  /** Writes of the whole state; a burst of commits and queue saves shares one. */
  readonly #writes = new CoalescedWrites(() => this.#writeState());
  #closed = false;

  constructor(file: SlotFile, state: StoredState, legacy: string[]) {
    this.#file = file;
    this.#offsets = state.offsets;
    this.#queue = state.queue;
    this.#legacy = legacy;
  }

  setOffsets(offsets: CommittedOffsets): Promise<void> {
    this.#offsets = Object.fromEntries(offsets);
    return this.#flush();
  }

  setQueue(snapshots: Record<string, QueueSnapshot>): Promise<void> {
    this.#queue = snapshots;
    return this.#flush();
  }

  /** Resolves once a write begun after this call is durable. */
  #flush(): Promise<void> {
    if (this.#closed) return Promise.reject(closedError(this.#file.path));
    return this.#writes.request();
  }

  async #writeState(): Promise<void> {
    const state: StoredState = { offsets: this.#offsets, queue: this.#queue };
    await this.#file.write(new TextEncoder().encode(JSON.stringify(state)));
    if (this.#legacy.length > 0) await this.#removeLegacy();
  }

  /**
   * The state is in `state.bin` (and its name durable): the JSON files it came
   * from can go. A failure here loses nothing (state.bin wins at the next
   * start, which removes them): the next write tries again.
   */
  async #removeLegacy(): Promise<void> {
    try {
      await Promise.all(this.#legacy.map((file) => removeIfPresent(file)));
      this.#legacy = [];
    } catch {
      // kept for the next write
    }
  }

  /**
   * The subscription is being deleted: no step of a write under way touches
   * its path any more (a new subscription of that name may take it at once);
   * its descriptor closes when that write ends.
   */
  abandon(): Promise<void> {
    this.#file.abandon();
    return this.close();
  }

  /** Waits for the write under way, then closes the file; later writes reject. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#writes.cancelWaiting(closedError(this.#file.path));
    await this.#writes.settled();
    await this.#file.close();
  }
}

function closedError(file: string): BrokerError {
  return new BrokerError(
    'SHUTTING_DOWN',
    `${file}: the subscription store is closed or the subscription deleted`,
  );
}

export class SubscriptionStore {
  readonly root: string;
  readonly #states = new Map<string, SubscriptionState>();
  #closed = false;

  constructor(dataDir: string) {
    this.root = path.join(dataDir, 'subscriptions');
    fs.mkdirSync(this.root, { recursive: true });
    for (const entry of fs.readdirSync(this.root)) {
      if (entry.startsWith('.creating-') || entry.startsWith('.deleting-'))
        fs.rmSync(path.join(this.root, entry), { recursive: true, force: true });
    }
  }

  /** Every stored subscription. A file that cannot be read is an error, never skipped silently. */
  load(): StoredSubscription[] {
    const loaded: StoredSubscription[] = [];
    for (const entry of fs.readdirSync(this.root, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
      const dir = path.join(this.root, entry.name);
      // Writes a crash interrupted before their rename: the files beside them are whole.
      for (const name of fs.readdirSync(dir)) if (name.startsWith('.')) fs.rmSync(path.join(dir, name));
      const file = path.join(dir, 'subscription.json');
      const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as StoredDefinition;
      if (stored.version !== STORE_VERSION || stored.definition?.name !== entry.name)
        throw new Error(`${file} is not a version ${STORE_VERSION} definition of subscription ${entry.name}`);
      const stateFile = path.join(dir, STATE_FILE);
      const content = readSlotFile(stateFile);
      // The state as earlier versions stored it, read until the first write moves it into state.bin.
      const offsetsJson = path.join(dir, 'offsets.json');
      const queueJson = path.join(dir, 'queue.json');
      const legacy = [offsetsJson, queueJson];
      let state: StoredState;
      if (content === null) {
        state = { offsets: readLegacyOffsets(offsetsJson), queue: readLegacyQueue(queueJson) };
      } else {
        state = parseState(content.record, stateFile);
        // Left by a crash between the first write of state.bin and their removal: state.bin is newer.
        for (const name of legacy) fs.rmSync(name, { force: true });
      }
      const slots = new SlotFile(stateFile, content, slotBytesMin(stored.definition));
      this.#states.set(
        entry.name,
        new SubscriptionState(slots, state, content === null ? legacy.filter((f) => fs.existsSync(f)) : []),
      );
      loaded.push({
        definition: stored.definition,
        offsets: new Map(Object.entries(state.offsets)),
        queue: new Map(Object.entries(state.queue)),
      });
    }
    return loaded;
  }

  /** Writes a new subscription durably and makes it appear in one rename. */
  create(definition: SubscriptionDefinition, offsets: CommittedOffsets): void {
    const staging = path.join(this.root, `.creating-${randomBytes(6).toString('hex')}`);
    fs.mkdirSync(staging);
    writeDurably(path.join(staging, 'subscription.json'), { version: STORE_VERSION, definition });
    const state: StoredState = { offsets: Object.fromEntries(offsets), queue: {} };
    const record = new TextEncoder().encode(JSON.stringify(state));
    createSlotFileSync(path.join(staging, STATE_FILE), record, slotBytesMin(definition));
    syncDirectory(staging);
    fs.renameSync(staging, path.join(this.root, definition.name));
    syncDirectory(this.root);
    const stateFile = path.join(this.root, definition.name, STATE_FILE);
    const slots = new SlotFile(stateFile, readSlotFile(stateFile), slotBytesMin(definition));
    this.#states.set(definition.name, new SubscriptionState(slots, state, []));
  }

  /**
   * Replaces the committed offsets, durably, off the event loop: the old or
   * the new set survives a crash. Needs no free space unless the state has
   * outgrown its file (then STORAGE_FULL on a full disk).
   */
  writeOffsets(name: string, offsets: CommittedOffsets): Promise<void> {
    return this.#state(name)?.setOffsets(offsets) ?? this.#notStored(name);
  }

  /** Replaces a queue subscription's state, as writeOffsets. */
  writeQueue(name: string, snapshots: Record<string, QueueSnapshot>): Promise<void> {
    return this.#state(name)?.setQueue(snapshots) ?? this.#notStored(name);
  }

  #state(name: string): SubscriptionState | undefined {
    return this.#closed ? undefined : this.#states.get(name);
  }

  #notStored(name: string): Promise<never> {
    return Promise.reject(
      this.#closed
        ? new BrokerError('SHUTTING_DOWN', 'the subscription store is closed')
        : new BrokerError('SUBSCRIPTION_NOT_FOUND', `durable subscription "${name}" is not stored`),
    );
  }

  /**
   * Replaces the definition (a filter swap, DurableSubscriptions.setFilter)
   * by a temporary file and a rename, which needs free space: a filter swap
   * on a full disk fails with STORAGE_FULL.
   */
  async writeDefinition(definition: SubscriptionDefinition): Promise<void> {
    const dir = path.join(this.root, definition.name);
    const file = path.join(dir, 'subscription.json');
    const staging = path.join(dir, `.${randomBytes(6).toString('hex')}-subscription.json`);
    try {
      const handle = await fs.promises.open(staging, 'wx');
      try {
        await handle.writeFile(JSON.stringify({ version: STORE_VERSION, definition }) + '\n');
        await handle.datasync();
      } finally {
        await handle.close();
      }
      await fs.promises.rename(staging, file);
    } catch (error) {
      // A full disk is STORAGE_FULL to the client, and leaves no half-written file behind.
      await removeIfPresent(staging);
      throw storageError(error, file);
    }
    // The rename made durable, off the event loop.
    const directory = await fs.promises.open(dir, 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  }

  /** Makes the subscription disappear in one rename, then removes its files. */
  delete(name: string): void {
    const state = this.#states.get(name);
    this.#states.delete(name);
    // A write under way stops before its next step by path; one already issued lands in the doomed directory.
    void state?.abandon().catch(() => undefined);
    const doomed = path.join(this.root, `.deleting-${randomBytes(6).toString('hex')}`);
    fs.renameSync(path.join(this.root, name), doomed);
    syncDirectory(this.root);
    fs.rmSync(doomed, { recursive: true, force: true });
  }

  /** Waits for the writes under way and closes every state file; later writes reject with SHUTTING_DOWN. */
  async close(): Promise<void> {
    this.#closed = true;
    const states = [...this.#states.values()];
    this.#states.clear();
    await Promise.all(states.map((state) => state.close().catch(() => undefined)));
  }
}

function slotBytesMin(definition: SubscriptionDefinition): number {
  return definition.type === 'queue' ? QUEUE_SLOT_BYTES_MIN : STREAM_SLOT_BYTES_MIN;
}

/** The record of `state.bin`. It passed its checksum, so a record that does not parse is CORRUPT_DATA, not a torn write. */
function parseState(record: Uint8Array, file: string): StoredState {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(record));
  } catch (error) {
    throw new BrokerError('CORRUPT_DATA', `${file}: the state is not JSON`, { cause: error });
  }
  const fields = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>;
  try {
    return { offsets: parseOffsets(fields['offsets']), queue: parseQueue(fields['queue']) };
  } catch (error) {
    throw new BrokerError('CORRUPT_DATA', `${file}: ${(error as Error).message}`, { cause: error });
  }
}

function parseOffsets(json: unknown): Record<string, number> {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new Error('the committed offsets are not an object');
  const offsets: Record<string, number> = {};
  for (const [key, offset] of Object.entries(json)) {
    if (!/^.+\/\d+$/.test(key) || !Number.isSafeInteger(offset) || (offset as number) < 0)
      throw new Error(`"${key}": ${String(offset)} is not a partition's committed offset`);
    offsets[key] = offset as number;
  }
  return offsets;
}

function parseQueue(json: unknown): Record<string, QueueSnapshot> {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new Error('the queue state is not an object');
  const snapshots: Record<string, QueueSnapshot> = {};
  for (const [key, snapshot] of Object.entries(json)) {
    try {
      snapshots[key] = parseQueueSnapshot(snapshot);
    } catch (error) {
      throw new Error(`"${key}": ${(error as Error).message}`, { cause: error });
    }
  }
  return snapshots;
}

/** `offsets.json` of an earlier version: `{version: 1, offsets: {"topic/partition": offset}}`. */
function readLegacyOffsets(file: string): Record<string, number> {
  const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: unknown; offsets?: unknown };
  if (stored.version !== STORE_VERSION)
    throw new Error(`${file} is not a version ${STORE_VERSION} set of committed offsets`);
  try {
    return parseOffsets(stored.offsets);
  } catch (error) {
    throw new Error(`${file}: ${(error as Error).message}`, { cause: error });
  }
}

/** `queue.json` of an earlier version, `{version: 1, partitions: {…}}`; absent: not a queue, or nothing acked yet. */
function readLegacyQueue(file: string): Record<string, QueueSnapshot> {
  if (!fs.existsSync(file)) return {};
  const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: unknown; partitions?: unknown };
  if (stored.version !== STORE_VERSION)
    throw new Error(`${file} is not a version ${STORE_VERSION} queue state`);
  try {
    return parseQueue(stored.partitions);
  } catch (error) {
    throw new Error(`${file}: ${(error as Error).message}`, { cause: error });
  }
}

function writeDurably(file: string, content: unknown): void {
  const fd = fs.openSync(file, 'wx');
  try {
    fs.writeSync(fd, JSON.stringify(content, null, 2) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
