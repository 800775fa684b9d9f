import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Broker, DeadLetterOffice, QueueGroup } from '../../src/broker/index.js';
import { defaultQueueConfig } from '../../src/broker/subscription-config.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const tempDir = useTempDirs('durable-broker');
const handle = { assigned: () => undefined, removed: () => undefined };

describe('broker > durable subscriptions', () => {
  it('leaves dead-letter topics out of a pattern unless the pattern names them', async () => {
    const broker = await Broker.open({ dataDir: tempDir() });
    try {
      for (const name of ['jobs', 'jobs.dlq', 'jobs.eu', 'jobs.eu.dlq']) await broker.createTopic(name, 1);
      const topicsOf = async (name: string, topic: string) =>
        (
          await broker.subscriptions.create({
            name,
            topic,
            type: 'queue',
            start: { kind: 'earliest', value: 0 },
            filter: '',
            config: {},
          })
        ).partitions.map((p) => p.topic);
      expect(await topicsOf('all-jobs', 'jobs.>')).toEqual(['jobs.eu']);
      expect(await topicsOf('one-level', 'jobs.*')).toEqual(['jobs.eu']);
      expect((await topicsOf('dead', 'jobs.*.dlq')).sort()).toEqual(['jobs.eu.dlq']);
    } finally {
      await broker.close();
    }
  });

  it('opens a subscription stored before queue settings existed as the stream it was', async () => {
    const dataDir = tempDir();
    const dir = path.join(dataDir, 'subscriptions', 'billing');
    fs.mkdirSync(dir, { recursive: true });
    const definition = {
      name: 'billing',
      topic: 'orders',
      type: 'stream',
      filter: '',
      config: { assignment: 'range', sessionTimeoutMs: 10_000 },
    };
    fs.writeFileSync(path.join(dir, 'subscription.json'), JSON.stringify({ version: 1, definition }));
    fs.writeFileSync(path.join(dir, 'offsets.json'), JSON.stringify({ version: 1, offsets: {} }));
    const broker = await Broker.open({ dataDir });
    try {
      await broker.createTopic('orders', 1);
      const member = broker.subscriptions.join('billing', 'm', handle);
      expect(member.group.queue).toBeNull();
      expect(broker.subscriptions.describe('billing').subscriptionType).toBe('stream');
    } finally {
      await broker.close();
    }
  });

  it('times member sessions on the monotonic clock: a wall clock a month ahead expires no one, one an hour back still expires a silent member', async () => {
    const hourMs = 3_600_000;
    let stepMs = 0;
    const broker = await Broker.open({ dataDir: tempDir(), nowMs: () => Date.now() + stepMs });
    const removed: string[] = [];
    const handleOf = (name: string) => ({
      assigned: () => undefined,
      removed: () => void removed.push(name),
    });
    let beating: NodeJS.Timeout | undefined;
    try {
      await broker.createTopic('orders', 1);
      await broker.subscriptions.create({
        name: 'billing',
        topic: 'orders',
        type: 'stream',
        start: { kind: 'earliest', value: 0 },
        filter: '',
        config: { 'session.timeout.ms': '600' },
      });
      const joinedAt = performance.now();
      const live = broker.subscriptions.join('billing', 'live', handleOf('live'));
      broker.subscriptions.join('billing', 'silent', handleOf('silent'));
      beating = setInterval(() => broker.subscriptions.heartbeat(live), 100);
      stepMs = 30 * 24 * hourMs;
      await new Promise((resolve) => setTimeout(resolve, 300)); // three session checks a month ahead
      expect(removed).toEqual([]);
      stepMs = -hourMs;
      const deadline = performance.now() + 3000;
      while (removed.length === 0 && performance.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 10));
      expect(removed).toEqual(['silent']);
      expect(performance.now() - joinedAt).toBeGreaterThanOrEqual(599); // whole milliseconds on both ends
    } finally {
      clearInterval(beating);
      await broker.close();
    }
  });

  it('refuses a queue whose default dead-letter topic could not exist', async () => {
    const broker = await Broker.open({ dataDir: tempDir() });
    try {
      const long = 'x'.repeat(246);
      await expect(
        broker.subscriptions.create({
          name: 'q',
          topic: long,
          type: 'queue',
          start: { kind: 'earliest', value: 0 },
          filter: '',
          config: {},
        }),
      ).rejects.toThrow(/set dead.letter.topic/);
      await expect(
        broker.subscriptions.create({
          name: 'q',
          topic: 'jobs',
          type: 'queue',
          start: { kind: 'earliest', value: 0 },
          filter: '{"\\u0077asm":"f@1"}',
          config: {},
        }),
      ).rejects.toThrow(/not a WASM one/);
    } finally {
      await broker.close();
    }
  });
});

describe('broker > queue group', () => {
  it('retries dead letters that fail with one timer, not one per failure', async () => {
    let calls = 0;
    const queue = new QueueGroup(
      'q',
      { ...defaultQueueConfig, maxDeliveries: 1, ackTimeoutMs: 100 },
      () => Promise.resolve(),
      () => {
        calls++;
        return Promise.reject(new Error('disk full'));
      },
    );
    try {
      const p = { topic: 'jobs', partition: 0 };
      queue.setPartitions([p], () => 0);
      const state = queue.state(p);
      state.claim(1, 0, 3, 0);
      for (const offset of [0, 1, 2]) queue.nack(1, p, offset, 1, 'no');
      await new Promise((resolve) => setTimeout(resolve, 2300));
      // Three dead letters, tried at once and then once a second: 3 × 3, not 3, 12, 39, …
      expect(calls).toBeGreaterThanOrEqual(6);
      expect(calls).toBeLessThanOrEqual(9);
    } finally {
      await queue.close();
    }
  });
});

describe('broker > dead-letter office', () => {
  it('drops a redrive record a crash cut short, so the next one starts on a line of its own', async () => {
    const dataDir = tempDir();
    const dir = path.join(dataDir, 'dead-letters');
    fs.mkdirSync(dir, { recursive: true });
    const whole = { at: 'x', partition: 0, offset: 3, target: 'jobs', targetPartition: 0, targetOffset: 9 };
    fs.writeFileSync(path.join(dir, 'jobs.dlq.jsonl'), JSON.stringify(whole) + '\n{"at":"y","parti');
    const broker = await Broker.open({ dataDir });
    try {
      const office = new DeadLetterOffice(dataDir, {
        listTopics: () => broker.listTopics(),
        describeTopic: (name) => broker.describeTopic(name),
        fetch: (...args) => broker.fetch(...args),
        publish: (...args) => broker.publish(...args),
        deadLetterTopics: () => [],
      });
      expect(fs.readFileSync(path.join(dir, 'jobs.dlq.jsonl'), 'utf8')).toBe(JSON.stringify(whole) + '\n');
      await broker.createTopic('jobs.dlq', 1);
      expect(office.list()).toEqual([{ topic: 'jobs.dlq', deadLetters: 0, redriven: 1 }]);
    } finally {
      await broker.close();
    }
  });
});
