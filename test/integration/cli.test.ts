import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { connect } from '../../src/client/index.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import { eddy, useServe } from '../helpers/serve.js';

const tempDir = useTempDirs('cli');
const serve = useServe();

describe('cli', () => {
  it('serves, manages topics, publishes and consumes, and drains on SIGTERM', async () => {
    const dataDir = tempDir();
    const { url, server, output } = await serve(dataDir);

    expect(
      (await eddy(url, 'topics', 'create', 'orders', '--partitions', '2', '--config', 'flush=always')).code,
    ).toBe(0);
    const grown = await eddy(url, 'topics', 'add-partitions', 'orders', '--partitions', '3', '--json');
    expect(grown.code).toBe(0);
    expect((JSON.parse(grown.stdout) as { partitions: unknown[] }).partitions).toHaveLength(3);
    const listed = await eddy(url, 'topics', 'list', '--json');
    expect(JSON.parse(listed.stdout)).toMatchObject([{ name: 'orders', config: { flush: 'always' } }]);

    const published = await eddy(
      url,
      'publish',
      'orders',
      '--type',
      'order.created',
      '--source',
      '/cli',
      '--data',
      '{"n":1}',
      '--key',
      'k1',
      '--partition',
      '0',
      '--json',
    );
    expect(published.code).toBe(0);
    expect(JSON.parse(published.stdout)).toMatchObject({ topic: 'orders', baseOffset: 0 });

    const file = path.join(dataDir, 'events.jsonl');
    fs.writeFileSync(
      file,
      [1, 2, 3]
        .map((i) =>
          JSON.stringify({ specversion: '1.0', id: `f-${i}`, source: '/file', type: 't', data: { i } }),
        )
        .join('\n') + '\n',
    );
    expect(
      (await eddy(url, 'publish', 'orders', '--file', file, '--partition', '1', '--idempotent')).code,
    ).toBe(0);

    const consumed = await eddy(url, 'consume', 'orders', '--from', 'earliest', '--until-end', '--json');
    expect(consumed.code).toBe(0);
    const events = consumed.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { id: string; data: unknown });
    expect(events.map((e) => e.id).sort()).toEqual(
      ['f-1', 'f-2', 'f-3', published.stdout && (JSON.parse(published.stdout) as { id: string }).id].sort(),
    );
    expect(events.find((e) => e.id === 'f-2')?.data).toEqual({ i: 2 });

    const limited = await eddy(
      url,
      'consume',
      'orders',
      '--partition',
      '1',
      '--from',
      'offset:1',
      '--max',
      '1',
    );
    expect(limited.stdout.trim()).toBe('orders[1]@1 t f-2');

    const filtered = await eddy(
      url,
      'consume',
      'orders',
      '--from',
      'earliest',
      '--until-end',
      '--filter',
      "id = 'f-2'",
    );
    expect(filtered.stdout.trim()).toBe('orders[1]@1 t f-2');
    const brokerFiltered = await eddy(
      url,
      'consume',
      'orders',
      '--from',
      'earliest',
      '--max',
      '1',
      '--filter',
      "id = 'f-3'",
    );
    expect(brokerFiltered.stdout.trim()).toBe('orders[1]@2 t f-3');

    expect((await eddy(url, 'topics', 'create', 'orders.eu')).code).toBe(0);
    expect((await eddy(url, 'publish', 'orders.eu', '--type', 't', '--source', '/cli')).code).toBe(0);
    const matched = await eddy(url, 'consume', 'orders.*', '--from', 'earliest', '--until-end');
    expect(matched.code).toBe(0);
    expect(matched.stdout).toMatch(/^orders\.eu\[0\]@0 t /);

    server.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => server.on('exit', resolve));
    expect(code).toBe(0);
    expect(output()).toMatch(/SIGTERM, draining[\s\S]*stopped/);
  });

  it('sends a request and prints the reply; no reply is a one-line TIMEOUT and a non-zero exit', async () => {
    const { url } = await serve(tempDir());
    const responder = await connect(url, { reconnectMaxDelayMs: 0 });
    try {
      await responder.createTopic('rpc.echo');
      await responder.subscribe('rpc.echo', { from: 'latest' }, (delivered) =>
        responder
          .reply(delivered, { type: 'rpc.echoed', source: '/responder', data: 'pong' })
          .then(() => undefined),
      );
      const answered = await eddy(
        url,
        'request',
        'rpc.echo',
        '--type',
        'rpc.ping',
        '--source',
        '/cli',
        '--data',
        'ping',
      );
      expect(answered.code).toBe(0);
      expect(answered.stdout).toMatch(/^rpc\.echoed \S+ pong$/m);
      await responder.createTopic('rpc.nobody');
      const silent = await eddy(
        url,
        'request',
        'rpc.nobody',
        '--type',
        't',
        '--source',
        '/cli',
        '--timeout-ms',
        '200',
      );
      expect(silent.code).not.toBe(0);
      expect(silent.stderr.trim().split('\n')).toHaveLength(1);
      expect(silent.stderr).toMatch(/no reply/);
    } finally {
      await responder.close();
    }
  });

  it('deploys a filter from AssemblyScript source or a .wasm file, lists, describes and deletes it', async () => {
    const { url } = await serve(tempDir());
    const fromSource = await eddy(
      url,
      'filters',
      'deploy',
      'filters/order-amount.ts',
      '--name',
      'big-orders',
      '--json',
    );
    expect(fromSource.code).toBe(0);
    expect(JSON.parse(fromSource.stdout)).toMatchObject({
      ref: 'big-orders@1',
      kind: 'filter',
      created: true,
    });
    const fromWasm = await eddy(
      url,
      'filters',
      'deploy',
      'dist/filters/mask-email.wasm',
      '--name',
      'mask',
      '--kind',
      'transform',
    );
    expect(fromWasm.stdout).toMatch(/^deployed mask@1 {2}transform/);
    const listed = await eddy(url, 'filters', 'list');
    expect(
      listed.stdout
        .trim()
        .split('\n')
        .map((row) => row.split(' ')[0]),
    ).toEqual(['big-orders@1', 'mask@1']);
    expect((await eddy(url, 'filters', 'describe', 'mask')).stdout).toMatch(/^mask@1 /);
    expect((await eddy(url, 'filters', 'delete', 'mask')).stdout.trim()).toBe('deleted mask@1');
    const missing = await eddy(url, 'filters', 'describe', 'mask');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/FILTER_NOT_FOUND/);
  });

  it('creates, lists, joins, seeks and deletes a durable subscription', async () => {
    const { url } = await serve(tempDir());
    expect((await eddy(url, 'topics', 'create', 'orders', '--partitions', '2')).code).toBe(0);
    for (let i = 0; i < 4; i++)
      expect(
        (await eddy(url, 'publish', 'orders', '--type', 't', '--source', '/s', '--key', `k${i}`)).code,
      ).toBe(0);
    const created = await eddy(
      url,
      'subscriptions',
      'create',
      'billing',
      '--topic',
      'orders',
      '--from',
      'earliest',
      '--config',
      'assignment=sticky',
      '--json',
    );
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout)).toMatchObject({ name: 'billing', subscriptionType: 'stream' });
    expect((await eddy(url, 'subscriptions', 'list')).stdout).toMatch(
      /^billing {2}stream {2}topic=orders .*lag=4/,
    );
    const joined = await eddy(url, 'subscriptions', 'join', 'billing', '--max', '4');
    expect(joined.code).toBe(0);
    expect(joined.stdout.trim().split('\n')).toHaveLength(4);
    expect((await eddy(url, 'subscriptions', 'describe', 'billing')).stdout).toMatch(/lag=0/);
    const seek = await eddy(url, 'subscriptions', 'seek', 'billing', '--to', 'earliest', '--partition', '0');
    expect(seek.code).toBe(0);
    expect(seek.stdout).toMatch(/orders\[0\] {2}committed=0/);
    const badType = await eddy(url, 'subscriptions', 'create', 'x', '--topic', 'orders', '--type', 'fanout');
    expect(badType.code).not.toBe(0);
    expect(badType.stderr).toMatch(/expected one of stream, queue, exclusive, failover/);
    expect((await eddy(url, 'subscriptions', 'delete', 'billing')).stdout.trim()).toBe('deleted billing');
    const missing = await eddy(url, 'subscriptions', 'describe', 'billing');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/SUBSCRIPTION_NOT_FOUND|no durable subscription/);
  });

  it('lists, shows and redrives dead letters', async () => {
    const { url } = await serve(tempDir());
    const client = await connect(url);
    try {
      await client.createTopic('jobs');
      await client.createSubscription('fragile', {
        topic: 'jobs',
        type: 'queue',
        from: 'earliest',
        config: { 'max.deliveries': '1' },
      });
      client.onError = () => undefined;
      const member = await client.join('fragile', {}, () => {
        throw new Error('no');
      });
      await client.publish('jobs', { type: 't', source: '/s', id: 'job-1' });
      const deadline = Date.now() + 10_000;
      while (
        !(await client.listTopics()).some((t) => t.name === 'jobs.dlq' && t.partitions[0]?.endOffset === 1)
      ) {
        if (Date.now() > deadline) throw new Error('no dead letter');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await member.close();
    } finally {
      await client.close();
    }
    expect((await eddy(url, 'dlq', 'list')).stdout.trim()).toBe('jobs.dlq  dead-letters=1  redriven=0');
    expect((await eddy(url, 'dlq', 'show', 'jobs.dlq')).stdout).toMatch(
      /^jobs\.dlq\[0\]@0 t job-1 {2}from=jobs\[0\]@0 {2}reason=max-deliveries {2}attempts=1 {2}error="no"/,
    );
    const refused = await eddy(url, 'dlq', 'redrive', 'jobs.dlq');
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/--offsets 3,7,9 or --all/);
    const redriven = await eddy(url, 'dlq', 'redrive', 'jobs.dlq', '--all');
    expect(redriven.stdout).toMatch(/jobs\.dlq\[0\]@0 -> jobs\[0\]@1\nredriven 1/);
    expect((await eddy(url, 'dlq', 'list')).stdout.trim()).toBe('jobs.dlq  dead-letters=1  redriven=1');
  });

  it('schedules a publish with --deliver-at: the event appears in its topic at that time', async () => {
    const { url } = await serve(tempDir());
    expect((await eddy(url, 'topics', 'create', 'orders')).code).toBe(0);
    const deliverAt = new Date(Date.now() + 1500).toISOString();
    const args = ['publish', 'orders', '--type', 't', '--source', '/cli', '--json'];
    const published = await eddy(url, ...args, '--deliver-at', deliverAt);
    expect(published.code, published.stderr).toBe(0);
    expect(JSON.parse(published.stdout)).toMatchObject({ topic: 'orders', baseOffset: -1, deliverAt });
    const read = async (): Promise<unknown[]> =>
      (await fetch(`${url}/v1/topics/orders/events?offset=0`)).json() as Promise<unknown[]>;
    const early = await read();
    if (Date.now() < Date.parse(deliverAt)) expect(early).toEqual([]);
    const bad = await eddy(url, ...args, '--deliver-at', 'soon');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/ISO 8601/);
    const deadline = Date.now() + 10_000;
    while ((await read()).length === 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await read()).toMatchObject([{ type: 't', source: '/cli' }]);
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(deliverAt));
  });

  it('fails with a one-line reason and a non-zero exit code', async () => {
    const { url } = await serve(tempDir());
    const missing = await eddy(url, 'topics', 'describe', 'nope');
    expect(missing.code).not.toBe(0);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/does not exist/);
    const badFrom = await eddy(url, 'consume', 'orders', '--from', 'yesterday');
    expect(badFrom.code).not.toBe(0);
    expect(badFrom.stderr).toMatch(/earliest, latest, offset:N or time:ISO/);
    const startedMs = performance.now();
    const unreachable = await eddy('http://127.0.0.1:1', 'topics', 'list');
    expect(unreachable.code).not.toBe(0);
    expect(unreachable.stderr.trim().split('\n')).toHaveLength(1);
    // At once, not once the 5 s connect timeout fires (a refused connection left it armed).
    expect(performance.now() - startedMs).toBeLessThan(4000);
  });
});
