import { describe, expect, it } from 'vitest';
import { isBrokerError, type DeliveredEvent, type EddyClient } from '../../src/client/index.js';
import type { RunningBroker } from '../../src/server/index.js';
import { eventually, useBrokers } from '../helpers/broker.js';

const { tempDir, start, client: connectTo, closeAll } = useBrokers('queue');

async function client(broker: RunningBroker): Promise<EddyClient> {
  const connected = await connectTo(broker);
  connected.onError = () => undefined; // handler failures are part of these tests
  return connected;
}

const job = (i: number) => ({ type: 'com.example.job', source: '/jobs', id: `j-${i}`, data: { i } });

/** A broker, a client, a topic `jobs` and a queue subscription `name` on it from the earliest event. */
async function jobsQueue(
  name: string,
  config: Record<string, string> = {},
): Promise<{ broker: RunningBroker; c: EddyClient }> {
  const broker = await start();
  const c = await client(broker);
  await c.createTopic('jobs');
  await c.createSubscription(name, { topic: 'jobs', type: 'queue', from: 'earliest', config });
  return { broker, c };
}

async function publishJobs(
  c: EddyClient,
  topic: string,
  from: number,
  count: number,
  key?: (i: number) => string,
) {
  for (let i = from; i < from + count; i++)
    await c.publish(topic, job(i), key === undefined ? {} : { key: key(i) });
}

describe('integration > queue subscriptions', () => {
  it('shares events among competing consumers, each acked event delivered once', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('jobs', { partitions: 2 });
    await c.createSubscription('workers', { topic: 'jobs', type: 'queue', from: 'earliest' });
    const byMember: string[][] = [[], [], []];
    for (const i of [0, 1, 2])
      await (
        await client(broker)
      ).join('workers', { credits: 1 }, async (d) => {
        byMember[i]?.push(d.event.id);
        await new Promise((resolve) => setTimeout(resolve, 1)); // slow enough for the others to get turns
      });
    await publishJobs(c, 'jobs', 0, 120);
    await eventually(() => byMember.flat().length >= 120, 'every job');
    const all = byMember.flat();
    expect(new Set(all).size).toBe(120);
    expect(all).toHaveLength(120);
    for (const handled of byMember) expect(handled.length).toBeGreaterThan(0);
    await eventually(async () => {
      const d = await c.describeSubscription('workers');
      return d.partitions.every((p) => p.committed === p.endOffset);
    }, 'the ack floors to reach the end');
  });

  it('redelivers an event that is not acked within the ack timeout, counting attempts', async () => {
    const { c } = await jobsQueue('slow', { 'ack.timeout.ms': '200' });
    const seen: DeliveredEvent[] = [];
    const member = await c.join('slow', { ack: 'manual' }, (d) => void seen.push(d));
    await publishJobs(c, 'jobs', 0, 1);
    await eventually(() => seen.length === 2, 'the redelivery');
    expect(seen.map((d) => [d.event.id, d.attempt])).toEqual([
      ['j-0', 1],
      ['j-0', 2],
    ]);
    await member.ack(seen[1] as DeliveredEvent);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(seen).toHaveLength(2);
  });

  it('keeps an event whose deadline was extended, and redelivers a nacked one after its delay', async () => {
    const { c } = await jobsQueue('ext', { 'ack.timeout.ms': '150' });
    const seen: DeliveredEvent[] = [];
    const member = await c.join('ext', { ack: 'manual' }, (d) => {
      seen.push(d);
      if (d.event.id === 'j-0' && d.attempt === 1) member.extend(d, 2000);
    });
    await publishJobs(c, 'jobs', 0, 2);
    await eventually(() => seen.length >= 2, 'both jobs');
    const started = Date.now();
    member.nack(seen.find((d) => d.event.id === 'j-1') as DeliveredEvent, { delayMs: 300, error: 'busy' });
    await eventually(() => seen.some((d) => d.event.id === 'j-1' && d.attempt === 2), 'the nacked job again');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    // j-0's deadline was extended to 2 s: it has not come again (its 150 ms timeout would have).
    expect(seen.filter((d) => d.event.id === 'j-0')).toHaveLength(1);
  });

  it('dead-letters an event after max deliveries, with where it came from and why', async () => {
    const { c } = await jobsQueue('fragile', { 'max.deliveries': '2', 'retry.backoff.ms': '10' });
    let calls = 0;
    await c.join('fragile', {}, () => {
      calls++;
      throw new Error('cannot process');
    });
    await publishJobs(c, 'jobs', 0, 1);
    await eventually(
      async () => (await c.listTopics()).some((t) => t.name === 'jobs.dlq'),
      'the dead-letter topic',
    );
    await eventually(async () => (await c.fetch('jobs.dlq', 0, 0)).events.length === 1, 'the dead letter');
    const [dead] = (await c.fetch('jobs.dlq', 0, 0)).events;
    expect(dead?.event.id).toBe('j-0');
    expect(dead?.event.extensions).toMatchObject({
      dlqtopic: 'jobs',
      dlqpartition: 0,
      dlqoffset: '0',
      dlqattempts: 2,
      dlqreason: 'max-deliveries',
      dlqerror: 'cannot process',
      dlqsubscription: 'fragile',
    });
    expect(calls).toBe(2);
    await eventually(
      async () => (await c.describeSubscription('fragile')).partitions[0]?.committed === 1,
      'the floor',
    );
  });

  it('lists, shows and redrives dead letters over HTTP, remembering redrives across a restart', async () => {
    const dataDir = tempDir();
    let broker = await start(dataDir);
    const c = await client(broker);
    await c.createTopic('jobs');
    await c.createSubscription('fragile', {
      topic: 'jobs',
      type: 'queue',
      from: 'earliest',
      config: { 'max.deliveries': '1' },
    });
    const member = await c.join('fragile', {}, (d) => {
      if (d.event.id !== 'j-9') throw new Error(`refused ${d.event.id}`);
    });
    await publishJobs(c, 'jobs', 0, 2);
    await eventually(
      async () => (await c.listTopics()).some((t) => t.name === 'jobs.dlq'),
      'the dead-letter topic',
    );
    await eventually(
      async () => (await c.describeTopic('jobs.dlq')).partitions[0]?.endOffset === 2,
      'two dead letters',
    );
    await member.close();
    const listed = (await (await fetch(`${broker.url}/v1/dlq`)).json()) as { deadLetterTopics: unknown[] };
    expect(listed.deadLetterTopics).toEqual([{ topic: 'jobs.dlq', deadLetters: 2, redriven: 0 }]);
    const shown = (await (await fetch(`${broker.url}/v1/dlq/jobs.dlq?limit=10`)).json()) as {
      deadLetters: { offset: number; origin: Record<string, unknown>; event: { id: string } }[];
    };
    expect(
      shown.deadLetters.map((d) => [d.offset, d.event.id, d.origin['reason'], d.origin['error']]),
    ).toEqual([
      [0, 'j-0', 'max-deliveries', 'refused j-0'],
      [1, 'j-1', 'max-deliveries', 'refused j-1'],
    ]);
    const redrive = (body: unknown) =>
      fetch(`${broker.url}/v1/dlq/jobs.dlq/redrive`, { method: 'POST', body: JSON.stringify(body) });
    const first = (await (await redrive({ offsets: [1] })).json()) as { redriven: { target: string }[] };
    expect(first.redriven).toMatchObject([{ offset: 1, target: 'jobs', targetOffset: 2 }]);
    const [back] = (await c.fetch('jobs', 0, 2)).events;
    expect(back?.event.id).toBe('j-1');
    expect(Object.keys(back?.event.extensions ?? {}).filter((name) => name.startsWith('dlq'))).toEqual([]);
    // Redriven once: --all skips it, so only j-0 goes (to a named topic this time).
    await c.createTopic('jobs.retry');
    const rest = (await (await redrive({ target: 'jobs.retry' })).json()) as {
      redriven: { offset: number }[];
    };
    expect(rest.redriven.map((r) => r.offset)).toEqual([0]);
    const missing = await redrive({ offsets: [7] });
    expect(missing.status).toBe(416); // OFFSET_OUT_OF_RANGE

    await closeAll();
    broker = await start(dataDir);
    const again = (await (await fetch(`${broker.url}/v1/dlq/jobs.dlq`)).json()) as {
      deadLetters: { redrive: { target: string } | null }[];
    };
    expect(again.deadLetters.map((d) => d.redrive?.target)).toEqual(['jobs.retry', 'jobs']);
  });

  it('lists, shows and redrives dead letters from the SDK', async () => {
    const { c } = await jobsQueue('sdk-dlq', { 'max.deliveries': '1' });
    const member = await c.join('sdk-dlq', {}, () => {
      throw new Error('nope');
    });
    await publishJobs(c, 'jobs', 0, 1);
    await eventually(
      async () => (await c.deadLetters.list()).some((t) => t.topic === 'jobs.dlq' && t.deadLetters === 1),
      'the dead letter',
    );
    await member.close();
    const shown = await c.deadLetters.show('jobs.dlq');
    expect(shown.deadLetters.map((d) => [d.offset, d.origin.reason, d.origin.error, d.event['id']])).toEqual([
      [0, 'max-deliveries', 'nope', 'j-0'],
    ]);
    expect(await c.deadLetters.redrive('jobs.dlq', { offsets: [0] })).toMatchObject([
      { offset: 0, target: 'jobs' },
    ]);
    expect(await c.deadLetters.list()).toEqual([{ topic: 'jobs.dlq', deadLetters: 1, redriven: 1 }]);
    await expect(c.deadLetters.show('nope.dlq')).rejects.toSatisfy((error) =>
      isBrokerError(error, 'TOPIC_NOT_FOUND'),
    );
  });

  it('redelivers in-flight events after a broker restart, keeping their attempt counts', async () => {
    const dataDir = tempDir();
    let broker = await start(dataDir);
    let c = await client(broker);
    await c.createTopic('jobs');
    await c.createSubscription('durable-jobs', { topic: 'jobs', type: 'queue', from: 'earliest' });
    await publishJobs(c, 'jobs', 0, 5);
    const seen: DeliveredEvent[] = [];
    const member = await c.join('durable-jobs', { ack: 'manual' }, (d) => void seen.push(d));
    await eventually(() => seen.length === 5, 'the first deliveries');
    await member.ack(seen[0] as DeliveredEvent, seen[2] as DeliveredEvent);
    await closeAll();

    broker = await start(dataDir);
    c = await client(broker);
    const again: DeliveredEvent[] = [];
    await c.join('durable-jobs', {}, (d) => void again.push(d));
    await eventually(() => again.length === 3, 'the unacked events');
    expect(again.map((d) => [d.event.id, d.attempt])).toEqual([
      ['j-1', 2],
      ['j-3', 2],
      ['j-4', 2],
    ]);
  });

  it('gives events to the higher-priority member while it has credit', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('jobs');
    await c.createSubscription('prio', { topic: 'jobs', type: 'queue', from: 'earliest' });
    const low: string[] = [];
    const high: string[] = [];
    await (await client(broker)).join('prio', { credits: 64 }, (d) => void low.push(d.event.id));
    await (
      await client(broker)
    ).join('prio', { credits: 64, priority: 5 }, (d) => void high.push(d.event.id));
    await publishJobs(c, 'jobs', 0, 20);
    await eventually(() => low.length + high.length === 20, 'every job');
    expect(high).toHaveLength(20);
    expect(low).toHaveLength(0);
  });

  it('keeps each key with one member, in order, with key.shared', async () => {
    const { broker, c } = await jobsQueue('keyed', { 'key.shared': 'true' });
    const byMember: DeliveredEvent[][] = [[], [], []];
    for (const i of [0, 1, 2])
      await (await client(broker)).join('keyed', { credits: 64 }, (d) => void byMember[i]?.push(d));
    await publishJobs(c, 'jobs', 0, 60, (i) => `k${i % 6}`);
    await eventually(() => byMember.flat().length === 60, 'every job');
    const owner = new Map<number, number>();
    for (const [member, events] of byMember.entries()) {
      let last = -1;
      for (const d of events) {
        const k = Number(d.event.id.slice(2)) % 6;
        expect(owner.get(k) ?? member).toBe(member);
        owner.set(k, member);
        expect(d.offset).toBeGreaterThan(last);
        last = d.offset;
      }
    }
    expect(owner.size).toBe(6);
  });

  it('acks at once the events its filter drops, so they never hold the queue back', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('jobs');
    await c.createSubscription('even', {
      topic: 'jobs',
      type: 'queue',
      from: 'earliest',
      filter: { sql: "id IN ('j-0', 'j-2', 'j-4', 'j-6', 'j-8')" },
    });
    const seen: string[] = [];
    await c.join('even', {}, (d) => void seen.push(d.event.id));
    await publishJobs(c, 'jobs', 0, 10);
    await eventually(() => seen.length === 5, 'the even jobs');
    expect(seen).toEqual(['j-0', 'j-2', 'j-4', 'j-6', 'j-8']);
    await eventually(
      async () => (await c.describeSubscription('even')).partitions[0]?.committed === 10,
      'the floor',
    );
  });

  it('does not deliver events older than the topic TTL: plain and stream subscriptions skip them, a queue dead-letters them', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('jobs', { config: { 'message.ttl.ms': '150' } });
    await c.createSubscription('stream-ttl', { topic: 'jobs', from: 'earliest' });
    await c.createSubscription('queue-ttl', {
      topic: 'jobs',
      type: 'queue',
      from: 'earliest',
      config: { 'dead.letter.expired': 'true' },
    });
    await publishJobs(c, 'jobs', 0, 2);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await publishJobs(c, 'jobs', 2, 1);
    const plain: string[] = [];
    const stream: string[] = [];
    const queue: string[] = [];
    await c.subscribe('jobs', { from: 'earliest' }, (d) => void plain.push(d.event.id));
    await c.join('stream-ttl', {}, (d) => void stream.push(d.event.id));
    await c.join('queue-ttl', {}, (d) => void queue.push(d.event.id));
    await eventually(() => plain.length > 0 && stream.length > 0 && queue.length > 0, 'the fresh job');
    await eventually(
      async () => (await c.listTopics()).some((t) => t.name === 'jobs.dlq'),
      'the dead-letter topic',
    );
    await eventually(async () => (await c.fetch('jobs.dlq', 0, 0)).events.length === 2, 'both expired jobs');
    expect([plain, stream, queue]).toEqual([['j-2'], ['j-2'], ['j-2']]);
    const dead = (await c.fetch('jobs.dlq', 0, 0)).events;
    expect(
      dead.map((d) => [d.event.id, d.event.extensions?.['dlqreason'], d.event.extensions?.['dlqattempts']]),
    ).toEqual([
      ['j-0', 'expired', 0],
      ['j-1', 'expired', 0],
    ]);
    // Still in the log: a fetch reads them.
    expect((await c.fetch('jobs', 0, 0)).events.map((d) => d.event.id)).toEqual(['j-0', 'j-1', 'j-2']);
    await eventually(
      async () => (await c.describeSubscription('queue-ttl')).partitions[0]?.committed === 3,
      'the floor',
    );
  });

  it('refuses queue settings on other types and a WASM filter on a queue', async () => {
    const broker = await start();
    const c = await client(broker);
    await expect(
      c.createSubscription('s', { topic: 'jobs', config: { 'ack.timeout.ms': '100' } }),
    ).rejects.toThrow(/ack.timeout.ms applies to queue subscriptions, not stream/);
    await expect(
      c.createSubscription('q', { topic: 'jobs', type: 'queue', filter: { wasm: 'x@1' } }),
    ).rejects.toThrow(/not a WASM one/);
    await expect(
      c.createSubscription('q', { topic: 'jobs', type: 'queue', config: { 'max.deliveries': 'many' } }),
    ).rejects.toThrow(/max.deliveries must be an integer/);
  });
});
