import { describe, expect, it } from 'vitest';
import { useBrokers } from '../helpers/broker.js';
import { eddy } from '../helpers/serve.js';

const { start, client } = useBrokers('replay-cli');

describe('cli > replay', () => {
  it('prints a range as consume does, with progress and a summary on stderr', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('orders', { partitions: 2 });
    for (let i = 0; i < 6; i++)
      await c.publish('orders', { type: 't', source: '/cli', id: `e-${i}` }, { partition: i % 2 });

    const { stdout, stderr } = await eddy(
      broker.url,
      'replay',
      'orders',
      '--from',
      'offset:1',
      '--rate',
      '50',
    );
    expect(stdout.trim().split('\n')).toEqual([
      'orders[0]@1 t e-2',
      'orders[0]@2 t e-4',
      'orders[1]@1 t e-3',
      'orders[1]@2 t e-5',
    ]);
    expect(stderr).toContain('replay: 4/4 done, 0 remaining (100%)');
    expect(stderr).toMatch(/replayed 4 events of orders in [\d.]+ s: \[0\] 1\.\.3 {2}\[1\] 1\.\.3; 0 gaps/);

    const json = await eddy(broker.url, 'replay', 'orders', '--partition', '1', '--to', 'offset:2', '--json');
    expect(
      json.stdout
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { id: string }).id),
    ).toEqual(['e-1', 'e-3']);
    const summary = JSON.parse(json.stderr.trim().split('\n').at(-1)!) as { summary: { events: number } };
    expect(summary.summary.events).toBe(2);

    const refused = await eddy(broker.url, 'replay', 'orders', '--from', 'latest');
    expect(refused).toMatchObject({ code: 1 });
  });
});
