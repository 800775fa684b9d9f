/**
 * A broker process killed with SIGKILL mid-publish loses nothing it acked with
 * `durable`, and its durable subscriptions' commits and queue acks that were
 * answered survive as well. The CI-sized run; scripts/soak runs it many times.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type EddyClient } from '../../src/client/index.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import { useServe } from '../helpers/serve.js';

const tempDir = useTempDirs('kill-nine');
const serve = useServe();
const clients: EddyClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
});

async function client(url: string): Promise<EddyClient> {
  const c = await connect(url, { reconnectMaxDelayMs: 0 });
  c.onError = () => undefined;
  clients.push(c);
  return c;
}

describe('integration > kill -9', () => {
  it('keeps every event acked with durable, and the answered commits and acks, across a SIGKILL', async () => {
    const dataDir = tempDir();
    const first = await serve(dataDir);
    let c = await client(first.url);
    await c.createTopic('orders', { partitions: 3 });
    await c.createSubscription('billing', { topic: 'orders', from: 'earliest' });
    await c.createSubscription('jobs', { topic: 'orders', type: 'queue', from: 'earliest' });
    for (let i = 0; i < 30; i++)
      await c.publish(
        'orders',
        { type: 't', source: '/s', id: `pre-${i}` },
        { key: `k${i}`, ack: 'durable' },
      );
    // A member commits what it handled (waiting for each commit), a queue member acks what it handled.
    const committed: string[] = [];
    const acked: string[] = [];
    const member = await c.join('billing', { ack: 'manual' }, async (d) => {
      await member.commit(d);
      committed.push(d.event.id);
    });
    const worker = await c.join('jobs', { ack: 'manual' }, async (d) => {
      if (d.event.id.startsWith('pre-') && Number(d.event.id.slice(4)) % 2 === 0) {
        await worker.ack(d);
        acked.push(d.event.id);
      }
    });
    const deadline = Date.now() + 10_000;
    while ((committed.length < 30 || acked.length < 15) && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(committed).toHaveLength(30);
    expect(acked.sort()).toEqual(Array.from({ length: 15 }, (_, k) => `pre-${2 * k}`).sort());

    // Publishing flat out with durable acks when the process dies.
    const durable: string[] = [];
    let stop = false;
    const publishing = (async () => {
      for (let i = 0; !stop; i++) {
        const id = `live-${i}`;
        try {
          await c.publish('orders', { type: 't', source: '/s', id }, { key: `k${i}`, ack: 'durable' });
          durable.push(id);
        } catch {
          return; // the broker is gone
        }
      }
    })();
    while (durable.length < 50) await new Promise((resolve) => setTimeout(resolve, 5));
    first.server.kill('SIGKILL');
    stop = true;
    await publishing;
    await Promise.all(clients.splice(0).map((x) => x.close().catch(() => undefined)));

    c = await client((await serve(dataDir)).url);
    const stored = new Set<string>();
    const topic = await c.describeTopic('orders');
    for (const { partition, endOffset } of topic.partitions)
      for (let offset = 0; offset < endOffset;) {
        const fetched = await c.fetch('orders', partition, offset);
        for (const d of fetched.events) stored.add(d.event.id);
        offset = fetched.nextOffset;
      }
    expect(durable.filter((id) => !stored.has(id))).toEqual([]);
    // The stream group resumes after its commits: none of the 30 committed events comes again.
    const again = await c.describeSubscription('billing');
    const ends = new Map(topic.partitions.map((p) => [p.partition, p.endOffset]));
    for (const p of again.partitions) expect(p.committed).toBeLessThanOrEqual(ends.get(p.partition) ?? 0);
    const redelivered: string[] = [];
    await c.join('billing', {}, (d) => void redelivered.push(d.event.id));
    const queued: string[] = [];
    await c.join('jobs', {}, (d) => void queued.push(d.event.id));
    const until = Date.now() + 10_000;
    const has = (list: string[], ids: string[]) => ids.every((id) => list.includes(id));
    const caughtUp = async () =>
      (await c.describeSubscription('billing')).partitions.every((p) => p.committed === p.endOffset);
    while (
      !(
        (await caughtUp()) &&
        has(queued, durable) &&
        queued.filter((id) => id.startsWith('pre-')).length >= 15
      ) &&
      Date.now() < until
    )
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(await caughtUp()).toBe(true);
    expect(has(queued, durable)).toBe(true);
    expect(redelivered.filter((id) => id.startsWith('pre-'))).toEqual([]);
    // The queue delivers again only what was not acked: the 15 odd pre-events and the live ones.
    expect(queued.filter((id) => acked.includes(id))).toEqual([]);
    expect(queued.filter((id) => id.startsWith('pre-')).sort()).toEqual(
      Array.from({ length: 15 }, (_, k) => `pre-${2 * k + 1}`).sort(),
    );
  });
});
