/**
 * Durable subscriptions on disk: `<dataDir>/subscriptions/<name>/` holds
 * `subscription.json` (the definition, written once, then only when its filter is swapped) and `offsets.json` (the
 * committed offset of every partition it reads). Both are replaced whole by a
 * write to a temporary file, fsync and rename, so a crash leaves the old or
 * the new version, never a torn one. A subscription appears and disappears in
 * one rename, as topics do (topic-store.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { syncDirectory } from '../log/index.js';
import { removeIfPresent, storageError } from '../filters/registry/files.js';
import { parseQueueSnapshot, type QueueSnapshot } from './queue-state.js';
import type { SubscriptionDefinition } from './subscription-config.js';

const STORE_VERSION = 1;

/** Committed offsets by partition key (`topic/partition`). */
export type CommittedOffsets = ReadonlyMap<string, number>;

interface StoredDefinition {
  readonly version: number;
  readonly definition: SubscriptionDefinition;
}

interface StoredOffsets {
  readonly version: number;
  readonly offsets: Record<string, number>;
}

export interface StoredSubscription {
  readonly definition: SubscriptionDefinition;
  readonly offsets: Map<string, number>;
  /** A queue subscription's per-partition state (queue-state.ts), by partition key. */
  readonly queue: Map<string, QueueSnapshot>;
}

export class SubscriptionStore {
  readonly root: string;

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
      loaded.push({
        definition: stored.definition,
        offsets: readOffsets(path.join(dir, 'offsets.json')),
        queue: readQueue(path.join(dir, 'queue.json')),
      });
    }
    return loaded;
  }

  /** Writes a new subscription durably and makes it appear in one rename. */
  create(definition: SubscriptionDefinition, offsets: CommittedOffsets): void {
    const staging = path.join(this.root, `.creating-${randomBytes(6).toString('hex')}`);
    fs.mkdirSync(staging);
    writeDurably(path.join(staging, 'subscription.json'), { version: STORE_VERSION, definition });
    writeDurably(path.join(staging, 'offsets.json'), offsetsFile(offsets));
    syncDirectory(staging);
    fs.renameSync(staging, path.join(this.root, definition.name));
    syncDirectory(this.root);
  }

  /** Replaces the committed offsets, durably, off the event loop: the old or the new set survives a crash. */
  writeOffsets(name: string, offsets: CommittedOffsets): Promise<void> {
    return this.#replace(name, 'offsets.json', offsetsFile(offsets));
  }

  /** Replaces the definition (a filter swap, DurableSubscriptions.setFilter), as writeOffsets. */
  writeDefinition(definition: SubscriptionDefinition): Promise<void> {
    return this.#replace(definition.name, 'subscription.json', { version: STORE_VERSION, definition });
  }

  /** Replaces a queue subscription's state, as writeOffsets. */
  writeQueue(name: string, snapshots: Record<string, QueueSnapshot>): Promise<void> {
    return this.#replace(name, 'queue.json', { version: STORE_VERSION, partitions: snapshots });
  }

  async #replace(name: string, file: string, content: unknown): Promise<void> {
    const dir = path.join(this.root, name);
    const staging = path.join(dir, `.${randomBytes(6).toString('hex')}-${file}`);
    try {
      const handle = await fs.promises.open(staging, 'wx');
      try {
        await handle.writeFile(JSON.stringify(content) + '\n');
        await handle.datasync();
      } finally {
        await handle.close();
      }
      await fs.promises.rename(staging, path.join(dir, file));
    } catch (error) {
      // A full disk is STORAGE_FULL to the committing client, and leaves no half-written file behind.
      await removeIfPresent(staging);
      throw storageError(error, path.join(dir, file));
    }
    // The rename made durable, off the event loop (a commit may come every few milliseconds).
    const directory = await fs.promises.open(dir, 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  }

  /** Makes the subscription disappear in one rename, then removes its files. */
  delete(name: string): void {
    const doomed = path.join(this.root, `.deleting-${randomBytes(6).toString('hex')}`);
    fs.renameSync(path.join(this.root, name), doomed);
    syncDirectory(this.root);
    fs.rmSync(doomed, { recursive: true, force: true });
  }
}

function offsetsFile(offsets: CommittedOffsets): StoredOffsets {
  return { version: STORE_VERSION, offsets: Object.fromEntries(offsets) };
}

function readOffsets(file: string): Map<string, number> {
  const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as StoredOffsets;
  if (stored.version !== STORE_VERSION || typeof stored.offsets !== 'object' || stored.offsets === null)
    throw new Error(`${file} is not a version ${STORE_VERSION} set of committed offsets`);
  const offsets = new Map<string, number>();
  for (const [key, offset] of Object.entries(stored.offsets)) {
    if (!/^.+\/\d+$/.test(key) || !Number.isSafeInteger(offset) || offset < 0)
      throw new Error(`${file}: "${key}": ${String(offset)} is not a partition's committed offset`);
    offsets.set(key, offset);
  }
  return offsets;
}

function readQueue(file: string): Map<string, QueueSnapshot> {
  const snapshots = new Map<string, QueueSnapshot>();
  if (!fs.existsSync(file)) return snapshots; // not a queue, or nothing acked yet
  const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as {
    version: number;
    partitions: Record<string, unknown>;
  };
  if (stored.version !== STORE_VERSION || typeof stored.partitions !== 'object' || stored.partitions === null)
    throw new Error(`${file} is not a version ${STORE_VERSION} queue state`);
  for (const [key, snapshot] of Object.entries(stored.partitions)) {
    try {
      snapshots.set(key, parseQueueSnapshot(snapshot));
    } catch (error) {
      throw new Error(`${file}: "${key}": ${(error as Error).message}`, { cause: error });
    }
  }
  return snapshots;
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
