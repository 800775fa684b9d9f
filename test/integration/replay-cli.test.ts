import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from '../../src/client/index.js';
import type { RunningBroker } from '../../src/server/index.js';
import { startTestBroker } from '../helpers/broker.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const run = promisify(execFile);
const tempDir = useTempDirs('replay-cli');
const main = path.resolve('dist/src/cli/main.js');
const brokers: RunningBroker[] = [];

afterEach(async () => {
  await Promise.all(brokers.splice(0).map((broker) => broker.close()));
});

describe('cli > replay', () => {
  it('prints a range as consume does, with progress and a summary on stderr', async () => {
    const broker = await startTestBroker({ port: 0, dataDir: tempDir() });
    brokers.push(broker);
    const client = await connect(broker.url);
    await client.createTopic('orders', { partitions: 2 });
    for (let i = 0; i < 6; i++)
      await client.publish('orders', { type: 't', source: '/cli', id: `e-${i}` }, { partition: i % 2 });
    await client.close();

    const { stdout, stderr } = await run(
      process.execPath,
      [main, 'replay', 'orders', '--from', 'offset:1', '--rate', '50', '--url', broker.url],
      { timeout: 20_000 },
    );
    expect(stdout.trim().split('\n')).toEqual([
      'orders[0]@1 t e-2',
      'orders[0]@2 t e-4',
      'orders[1]@1 t e-3',
      'orders[1]@2 t e-5',
    ]);
    expect(stderr).toContain('replay: 4/4 done, 0 remaining (100%)');
    expect(stderr).toMatch(/replayed 4 events of orders in [\d.]+ s: \[0\] 1\.\.3 {2}\[1\] 1\.\.3; 0 gaps/);

    const json = await run(
      process.execPath,
      [main, 'replay', 'orders', '--partition', '1', '--to', 'offset:2', '--json', '--url', broker.url],
      { timeout: 20_000 },
    );
    expect(
      json.stdout
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { id: string }).id),
    ).toEqual(['e-1', 'e-3']);
    const summary = JSON.parse(json.stderr.trim().split('\n').at(-1)!) as { summary: { events: number } };
    expect(summary.summary.events).toBe(2);

    const refused = await run(process.execPath, [
      main,
      'replay',
      'orders',
      '--from',
      'latest',
      '--url',
      broker.url,
    ]).catch((error: unknown) => error as { code: number; stderr: string });
    expect(refused).toMatchObject({ code: 1 });
  });
});
