/**
 * Topics on disk: `<dataDir>/topics/<name>/topic.json` holds the config, and
 * `<dataDir>/topics/<name>/<partition>/` each partition's log. A topic appears
 * and disappears atomically: it is built under a `.creating-` name and renamed
 * into place, and renamed to a `.deleting-` name before its files are removed,
 * so a crash never leaves half a topic; leftovers are cleared at start-up.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { syncDirectory } from '../log/index.js';
import type { TopicConfig } from './topic-config.js';

const STORE_VERSION = 1;

interface StoredTopic {
  readonly version: number;
  readonly name: string;
  readonly config: TopicConfig;
}

export class TopicStore {
  readonly root: string;

  constructor(dataDir: string) {
    this.root = path.join(dataDir, 'topics');
    fs.mkdirSync(this.root, { recursive: true });
    for (const entry of fs.readdirSync(this.root)) {
      if (entry.startsWith('.creating-') || entry.startsWith('.deleting-')) {
        fs.rmSync(path.join(this.root, entry), { recursive: true, force: true });
      }
    }
  }

  partitionDir(name: string, partition: number): string {
    return path.join(this.root, name, String(partition));
  }

  /** Every stored topic, by name. A topic.json that cannot be read is an error, never skipped silently. */
  load(): Map<string, TopicConfig> {
    const topics = new Map<string, TopicConfig>();
    for (const entry of fs.readdirSync(this.root, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
      const dir = path.join(this.root, entry.name);
      // An update that a crash interrupted before its rename: the topic.json beside it is whole.
      for (const name of fs.readdirSync(dir))
        if (/^\.topic-.*\.json$/.test(name)) fs.rmSync(path.join(dir, name));
      const file = path.join(dir, 'topic.json');
      const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as StoredTopic;
      if (stored.version !== STORE_VERSION || stored.name !== entry.name)
        throw new Error(`${file} is not a version ${STORE_VERSION} description of topic ${entry.name}`);
      topics.set(stored.name, stored.config);
    }
    return topics;
  }

  /** Writes a new topic's description durably and makes it appear in one rename. */
  create(name: string, config: TopicConfig): void {
    const staging = path.join(this.root, `.creating-${randomBytes(6).toString('hex')}`);
    fs.mkdirSync(staging);
    writeDurably(path.join(staging, 'topic.json'), { version: STORE_VERSION, name, config });
    syncDirectory(staging);
    fs.renameSync(staging, path.join(this.root, name));
    syncDirectory(this.root);
  }

  /** Replaces an existing topic's description in one rename: a crash leaves the old or the new one. */
  update(name: string, config: TopicConfig): void {
    const dir = path.join(this.root, name);
    const staging = path.join(dir, `.topic-${randomBytes(6).toString('hex')}.json`);
    writeDurably(staging, { version: STORE_VERSION, name, config });
    fs.renameSync(staging, path.join(dir, 'topic.json'));
    syncDirectory(dir);
  }

  /** Makes the topic disappear in one rename, then removes its files. */
  delete(name: string): void {
    const doomed = path.join(this.root, `.deleting-${randomBytes(6).toString('hex')}`);
    fs.renameSync(path.join(this.root, name), doomed);
    syncDirectory(this.root);
    fs.rmSync(doomed, { recursive: true, force: true });
  }
}

function writeDurably(file: string, stored: StoredTopic): void {
  const fd = fs.openSync(file, 'wx');
  try {
    fs.writeSync(fd, JSON.stringify(stored, null, 2) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
