/**
 * Dead-letter topics from an operator's side: which there are, what is in
 * them (each dead letter with where it came from and why it died), and
 * redrive — publishing chosen dead letters again, to the topic they came from
 * or to a named one, without the dead-letter extensions. Every redrive is
 * recorded in `<dataDir>/dead-letters/<topic>.jsonl` (appended and fsynced
 * before the call returns), so a dead letter is known as redriven after a
 * restart and is not sent twice by accident.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  BrokerError,
  encodeEventBatch,
  type DeadLetterOrigin,
  type DeadLetterTopic,
  type EventFields,
  type Redrive,
  type RedriveRequest,
  type TopicDescription,
} from '../protocol/index.js';
import { syncDirectory } from '../log/index.js';
import { forEachStoredEvent } from './stored-events.js';
import { DEAD_LETTER_EXTENSIONS, storedEvent } from './dead-letters.js';
import type { Fetched, PublishMeta, PublishTarget, Published } from './broker.js';

/** What the office needs of the broker. */
export interface DeadLetterBroker {
  listTopics(): TopicDescription[];
  describeTopic(name: string): TopicDescription;
  fetch(topic: string, partition: number, offset: number, maxBytes: number): Promise<Fetched>;
  publish(topic: string, target: PublishTarget, events: Uint8Array, meta: PublishMeta): Promise<Published>;
  /** Dead-letter topics named by queue subscriptions (besides `<topic>.dlq`). */
  deadLetterTopics(): string[];
}

export interface DeadLetterView {
  readonly partition: number;
  readonly offset: number;
  readonly event: EventFields;
  readonly origin: DeadLetterOrigin;
  readonly redrive: Redrive | null;
}

const READ_BYTES = 1 << 20;
const REDRIVE_MAX = 10_000;

const extension = (event: EventFields, name: string): string | number | null => {
  const found = event.extensions?.find((e) => e.name === name);
  return found === undefined || (typeof found.value !== 'string' && typeof found.value !== 'number')
    ? null
    : found.value;
};

export class DeadLetterOffice {
  readonly #dir: string;
  readonly #broker: DeadLetterBroker;
  /** Redrives by topic, then by `partition/offset`. */
  readonly #redrives = new Map<string, Map<string, Redrive>>();

  constructor(dataDir: string, broker: DeadLetterBroker) {
    this.#dir = path.join(dataDir, 'dead-letters');
    this.#broker = broker;
    fs.mkdirSync(this.#dir, { recursive: true });
    for (const file of fs.readdirSync(this.#dir)) {
      if (!file.endsWith('.jsonl')) continue;
      const records = new Map<string, Redrive>();
      const text = fs.readFileSync(path.join(this.#dir, file), 'utf8');
      // A line a crash cut short (no newline yet) goes, so the next record starts on a line of its own;
      // its redrive's publish may have happened, and nothing else is lost.
      const whole = text.slice(0, text.lastIndexOf('\n') + 1);
      if (whole.length < text.length) fs.truncateSync(path.join(this.#dir, file), Buffer.byteLength(whole));
      for (const line of whole.split('\n')) {
        if (line.trim() === '') continue;
        const record = JSON.parse(line) as Redrive;
        records.set(`${record.partition}/${record.offset}`, record);
      }
      this.#redrives.set(file.slice(0, -'.jsonl'.length), records);
    }
  }

  /** Every dead-letter topic: named `<topic>.dlq`, or some queue subscription's `dead.letter.topic`. */
  list(): DeadLetterTopic[] {
    const named = new Set(this.#broker.deadLetterTopics());
    return this.#broker
      .listTopics()
      .filter((t) => t.name.endsWith('.dlq') || named.has(t.name))
      .map((t) => ({
        topic: t.name,
        deadLetters: t.partitions.reduce((sum, p) => sum + p.endOffset - p.startOffset, 0),
        redriven: this.#redrives.get(t.name)?.size ?? 0,
      }));
  }

  /** Up to `limit` dead letters of a partition from `offset`, with where they came from and any redrive. */
  async show(
    topic: string,
    partition: number,
    offset: number,
    limit: number,
  ): Promise<{ deadLetters: DeadLetterView[]; nextOffset: number; endOffset: number }> {
    const deadLetters: DeadLetterView[] = [];
    let next = offset;
    let endOffset = offset;
    while (deadLetters.length < limit) {
      const fetched = await this.#broker.fetch(topic, partition, next, READ_BYTES);
      endOffset = fetched.endOffset;
      if (fetched.nextOffset <= next) break;
      forEachStoredEvent(fetched.batches, (at, event) => {
        if (at < next || deadLetters.length >= limit) return;
        deadLetters.push(this.#view(topic, partition, at, event));
      });
      next = deadLetters.length >= limit ? (deadLetters.at(-1)?.offset ?? next) + 1 : fetched.nextOffset;
      if (next >= fetched.endOffset) break;
    }
    return { deadLetters, nextOffset: Math.max(next, offset), endOffset };
  }

  #view(topic: string, partition: number, offset: number, event: EventFields): DeadLetterView {
    const number = (name: string): number | null => {
      const value = extension(event, name);
      return typeof value === 'number' ? value : null;
    };
    const text = (name: string): string | null => {
      const value = extension(event, name);
      return typeof value === 'string' ? value : null;
    };
    return {
      partition,
      offset,
      event,
      origin: {
        topic: text('dlqtopic'),
        partition: number('dlqpartition'),
        offset: text('dlqoffset'),
        subscription: text('dlqsubscription'),
        attempts: number('dlqattempts'),
        reason: text('dlqreason'),
        error: text('dlqerror'),
      },
      redrive: this.#redrives.get(topic)?.get(`${partition}/${offset}`) ?? null,
    };
  }

  /**
   * Publishes the chosen dead letters again (durably, under their original
   * key), each without its dead-letter extensions, and records each redrive.
   * One without a topic to go back to (no `dlqtopic` and no `target`) is
   * refused before anything is sent.
   */
  async redrive(topic: string, request: RedriveRequest): Promise<Redrive[]> {
    const partition = request.partition ?? 0;
    const description = this.#broker.describeTopic(topic);
    const info = description.partitions[partition];
    if (info === undefined)
      throw new BrokerError('PARTITION_NOT_FOUND', `topic "${topic}" has no partition ${partition}`);
    const offsets =
      request.offsets ??
      range(
        Math.max(request.from ?? info.startOffset, info.startOffset),
        Math.min(request.to ?? info.endOffset, info.endOffset),
      );
    if (offsets.length > REDRIVE_MAX)
      throw new BrokerError(
        'INVALID_REQUEST',
        `a redrive takes at most ${REDRIVE_MAX} dead letters, not ${offsets.length}`,
      );
    const records = this.#redrives.get(topic) ?? new Map<string, Redrive>();
    const chosen: { offset: number; event: EventFields; key: Uint8Array | null; target: string }[] = [];
    for (const offset of offsets) {
      if (!Number.isSafeInteger(offset) || offset < info.startOffset || offset >= info.endOffset)
        throw new BrokerError(
          'OFFSET_OUT_OF_RANGE',
          `offset ${offset} is outside partition ${partition} of "${topic}" [${info.startOffset}, ${info.endOffset})`,
        );
      if (!request.again && records.has(`${partition}/${offset}`)) continue;
      const fetched = await this.#broker.fetch(topic, partition, offset, 1);
      const found = storedEvent(fetched.batches, offset);
      if (found === null) continue; // removed by retention meanwhile
      const target = request.target ?? extension(found.event, 'dlqtopic');
      if (typeof target !== 'string')
        throw new BrokerError(
          'INVALID_REQUEST',
          `dead letter ${offset} names no topic it came from (no dlqtopic extension); give a target`,
        );
      chosen.push({ offset, ...found, target });
    }
    const done: Redrive[] = [];
    for (const { offset, event, key, target } of chosen) {
      const names = new Set<string>(DEAD_LETTER_EXTENSIONS);
      const original = { ...event, extensions: (event.extensions ?? []).filter((e) => !names.has(e.name)) };
      const published = await this.#broker.publish(
        target,
        { partition: -1, key },
        encodeEventBatch([original]),
        {
          eventCount: 1,
          ack: 'durable',
          compression: 'none',
          // Back where it died: the event is what that topic stored, its transform's output already.
          ...(target === extension(event, 'dlqtopic') ? { transformed: true as const } : {}),
        },
      );
      if (published.transformedEvents === 0)
        throw new BrokerError(
          'FILTER_FAILED',
          `dead letter ${offset} was not redriven: the transform of "${target}" left nothing of it to store`,
        );
      const record: Redrive = {
        at: new Date().toISOString(),
        partition,
        offset,
        target,
        targetPartition: published.partition,
        targetOffset: published.baseOffset,
      };
      this.#record(topic, record);
      records.set(`${partition}/${offset}`, record);
      this.#redrives.set(topic, records);
      done.push(record);
    }
    return done;
  }

  #record(topic: string, record: Redrive): void {
    const file = path.join(this.#dir, `${topic}.jsonl`);
    const created = !fs.existsSync(file);
    const fd = fs.openSync(file, 'a');
    try {
      fs.writeSync(fd, JSON.stringify(record) + '\n');
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    if (created) syncDirectory(this.#dir);
  }

  /** The topic was deleted: its redrive records go with it. */
  forget(topic: string): void {
    this.#redrives.delete(topic);
    fs.rmSync(path.join(this.#dir, `${topic}.jsonl`), { force: true });
  }
}

function range(from: number, to: number): number[] {
  const offsets: number[] = [];
  for (let offset = from; offset < to && offsets.length <= REDRIVE_MAX; offset++) offsets.push(offset);
  return offsets;
}
