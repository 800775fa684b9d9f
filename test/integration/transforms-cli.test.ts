import { describe, expect, it } from 'vitest';
import { useTempDirs } from '../helpers/temp-dir.js';
import { eddy, useServe } from '../helpers/serve.js';

const tempDir = useTempDirs('transforms-cli');
const serve = useServe();

describe('cli > transforms', () => {
  it('attaches, shows, lists and removes a topic transform, and fails with a one-line reason', async () => {
    const { url } = await serve(tempDir());
    const deployed = await eddy(
      url,
      'filters',
      'deploy',
      'dist/filters/mask-email.wasm',
      '--name',
      'mask',
      '--kind',
      'transform',
    );
    expect(deployed.code).toBe(0);
    expect((await eddy(url, 'topics', 'create', 'users')).code).toBe(0);

    const set = await eddy(url, 'transforms', 'set', 'users', 'mask');
    expect(set).toMatchObject({ code: 0, stdout: 'attached: users runs mask@1 (onTrap reject)\n' });
    const replaced = await eddy(url, 'transforms', 'set', 'users', 'mask@1', '--on-trap', 'skip', '--json');
    expect(JSON.parse(replaced.stdout)).toMatchObject({
      topic: 'users',
      transform: 'mask@1',
      onTrap: 'skip',
      version: 2,
      created: false,
    });
    expect((await eddy(url, 'transforms', 'get', 'users')).stdout).toBe(
      'users  transform=mask@1  onTrap=skip  version=2\n',
    );
    expect(JSON.parse((await eddy(url, 'transforms', 'list', '--json')).stdout)).toEqual([
      expect.objectContaining({ topic: 'users', transform: 'mask@1' }),
    ]);

    const published = await eddy(
      url,
      'publish',
      'users',
      '--type',
      'user',
      '--source',
      '/cli',
      '--data',
      '{"email":"erin@example.com"}',
    );
    expect(published.code).toBe(0);
    const consumed = await eddy(url, 'consume', 'users', '--from', 'earliest', '--max', '1', '--json');
    expect(consumed.stdout).toContain('e***@example.com');

    expect((await eddy(url, 'transforms', 'remove', 'users')).stdout).toBe(
      'removed the transform of users\n',
    );
    expect((await eddy(url, 'transforms', 'get', 'users')).stdout).toBe('users  no transform\n');

    const refused = await eddy(url, 'transforms', 'set', 'missing', 'mask');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^eddy: TOPIC_NOT_FOUND: .*\n$/);
    const badPolicy = await eddy(url, 'transforms', 'set', 'users', 'mask', '--on-trap', 'dead-letter');
    expect(badPolicy.code).toBe(1);
    expect(badPolicy.stderr.trim().split('\n')).toHaveLength(1);
  });
});
