import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { useTempDirs } from '../helpers/temp-dir.js';
import { eddy, useServe } from '../helpers/serve.js';

const tempDir = useTempDirs('routing-cli');
const serve = useServe();

describe('cli > routing', () => {
  it('sets, lists, gets, tests and deletes a rule set, and reports a bad one with its position', async () => {
    const dataDir = tempDir();
    const { url } = await serve(dataDir);
    const files = tempDir();
    const rules = path.join(files, 'rules.json');
    fs.writeFileSync(
      rules,
      JSON.stringify({
        source: 'orders.*',
        rules: [{ name: 'eu', priority: 5, when: "region = 'eu'", to: ['orders-eu'], stop: true }],
      }),
    );
    const event = path.join(files, 'event.json');
    fs.writeFileSync(
      event,
      JSON.stringify({ specversion: '1.0', id: '1', source: '/shop', type: 'order', region: 'eu' }),
    );

    const set = await eddy(url, 'routing', 'set', 'orders', '--file', rules);
    expect(set).toMatchObject({ code: 0, stdout: 'created orders version 1\n' });
    const listed = await eddy(url, 'routing', 'list');
    expect(listed.stdout).toContain('orders  source=orders.*  version=1  rules=1');
    expect(listed.stdout).toContain("eu  priority=5  to=orders-eu  stop  when=region = 'eu'");
    const got = await eddy(url, 'routing', 'get', 'orders', '--json');
    expect(JSON.parse(got.stdout)).toMatchObject({ id: 'orders', source: 'orders.*' });

    const tested = await eddy(url, 'routing', 'test', 'orders', '--event', event);
    expect(tested.code).toBe(0);
    expect(tested.stdout).toContain('matched eu  priority=5  to=orders-eu  stop');
    expect(tested.stdout).toContain('routed to orders-eu');
    expect(tested.stdout).toContain('missing topics (a publish would be refused): orders-eu');

    fs.writeFileSync(
      rules,
      JSON.stringify({ source: 'orders', rules: [{ name: 'bad', when: 'type =', to: ['x'] }] }),
    );
    const refused = await eddy(url, 'routing', 'set', 'orders', '--file', rules);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/INVALID_REQUEST: .*rule "bad".*line 1, column \d+/);

    expect((await eddy(url, 'routing', 'delete', 'orders')).stdout).toBe('deleted orders\n');
    const missing = await eddy(url, 'routing', 'get', 'orders');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('ROUTING_RULE_SET_NOT_FOUND');
  });
});
