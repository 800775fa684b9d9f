import { describe, expect, it } from 'vitest';
import { useTempDirs } from '../helpers/temp-dir.js';
import { eddy, useServe } from '../helpers/serve.js';

const tempDir = useTempDirs('filter-swap-cli');
const serve = useServe();

describe('cli > subscriptions > set-filter', () => {
  it('swaps a WASM filter version, prints the subscription, and fails with a one-line reason', async () => {
    const { url } = await serve(tempDir());
    for (const [file, name] of [
      ['dist/filters/keep-all.wasm', 'gate'],
      ['dist/filters/order-amount.wasm', 'gate'],
    ] as const)
      expect((await eddy(url, 'filters', 'deploy', file, '--name', name)).code).toBe(0);
    expect((await eddy(url, 'topics', 'create', 'orders', '--partitions', '2')).code).toBe(0);
    const created = await eddy(
      url,
      'subscriptions',
      'create',
      'audit',
      '--topic',
      'orders',
      '--filter',
      '{"wasm": "gate@1"}',
    );
    expect(created.code, created.stderr).toBe(0);
    expect((await eddy(url, 'subscriptions', 'create', 'unfiltered', '--topic', 'orders')).code).toBe(0);

    const swapped = await eddy(url, 'subscriptions', 'set-filter', 'audit', '--wasm', 'gate@2', '--json');
    expect(swapped.code, swapped.stderr).toBe(0);
    expect(JSON.parse(swapped.stdout)).toMatchObject({
      type: 'SubscriptionDescription',
      name: 'audit',
      topic: 'orders',
      filter: '{"wasm":"gate@2"}',
      partitions: [{ partition: 0 }, { partition: 1 }],
    });
    const back = await eddy(
      url,
      'subscriptions',
      'set-filter',
      'audit',
      '--wasm',
      'gate@1',
      '--on-trap',
      'disable',
    );
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout.split('\n')[0]).toMatch(
      /^audit {2}stream {2}topic=orders {2}.* {2}filter=\{"wasm":"gate@1","onTrap":"disable"\}$/,
    );
    const described = await eddy(url, 'subscriptions', 'describe', 'audit', '--json');
    expect(JSON.parse(described.stdout)).toMatchObject({ filter: '{"wasm":"gate@1","onTrap":"disable"}' });

    const failures = [
      [['audit', '--wasm', 'gate@9'], /^eddy: INVALID_REQUEST: .*gate@9/],
      [['unfiltered', '--wasm', 'gate@2'], /^eddy: INVALID_REQUEST: .*no WASM filter/],
      [['nope', '--wasm', 'gate@2'], /^eddy: SUBSCRIPTION_NOT_FOUND: /],
      [
        ['audit', '--wasm', 'gate@2', '--on-trap', 'retry'],
        /retry.*skip, dead-letter, disable|Allowed choices/,
      ],
      [['audit'], /--wasm/],
    ] as const;
    for (const [args, reason] of failures) {
      const failed = await eddy(url, 'subscriptions', 'set-filter', ...args);
      expect(failed.code, args.join(' ')).not.toBe(0);
      expect(failed.stdout).toBe('');
      expect(failed.stderr.trim().split('\n'), failed.stderr).toHaveLength(1);
      expect(failed.stderr).toMatch(reason);
    }
    const help = await eddy(url, 'subscriptions', 'set-filter', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--wasm <ref>/);
    expect(help.stdout).toMatch(/--on-trap <policy>/);
  });
});
