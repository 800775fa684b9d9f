import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  FilterRegistry,
  FilterSandbox,
  filterErrors,
  isFilterError,
  parseFilterRef,
  type FilterErrorName,
} from '../../src/filters/index.js';
import { isBrokerError } from '../../src/protocol/index.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import { buildExamples, exampleModule } from './fixtures/wasm-examples.js';
import { hostile } from './fixtures/wasm-modules.js';

const tempDir = useTempDirs('filter-registry');

let orderAmount: Uint8Array;
let euOrders: Uint8Array;
let maskEmail: Uint8Array;
let splitItems: Uint8Array;

beforeAll(() => {
  buildExamples();
  orderAmount = exampleModule('order-amount');
  euOrders = exampleModule('eu-orders');
  maskEmail = exampleModule('mask-email');
  splitItems = exampleModule('split-items');
});

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Awaits `promise` and returns the FilterError it rejects with, checking its name. */
async function filterErrorOf(promise: Promise<unknown>, name: FilterErrorName): Promise<Error> {
  const error: unknown = await promise.then(
    () => null,
    (reason: unknown) => reason,
  );
  expect(isFilterError(error, name), `expected ${name}, got ${String(error)}`).toBe(true);
  return error as Error;
}

function thrownBy(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  return null;
}

/** Every file under `dir`, relative to it, sorted. */
function filesUnder(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }) as string[])
    .filter((file) => fs.statSync(path.join(dir, file)).isFile())
    .sort();
}

describe('filters > registry > put and get', () => {
  it('stores a filter and a transform and gives back their bytes, kind, hash, size and time', async () => {
    const registry = await FilterRegistry.open(tempDir());
    const before = Date.now();
    const filter = await registry.put('orders-over-100', orderAmount, { kind: 'filter' });
    const transform = await registry.put('mask.email', maskEmail, { kind: 'transform' });

    expect(filter).toMatchObject({
      name: 'orders-over-100',
      version: 1,
      ref: 'orders-over-100@1',
      kind: 'filter',
      sha256: sha256(orderAmount),
      sizeBytes: orderAmount.length,
      created: true,
    });
    expect(transform).toMatchObject({ ref: 'mask.email@1', kind: 'transform', sha256: sha256(maskEmail) });
    expect(Date.parse(filter.createdAt)).toBeGreaterThanOrEqual(before - 1000);
    expect(new Date(filter.createdAt).toISOString()).toBe(filter.createdAt);

    const stored = await registry.get('orders-over-100@1');
    expect(Buffer.from(stored.bytes).equals(orderAmount)).toBe(true);
    expect(stored).toMatchObject({ name: 'orders-over-100', version: 1, kind: 'filter' });
    expect(stored.createdAt).toBe(filter.createdAt);
    expect({ ...registry.describe('orders-over-100@1'), bytes: stored.bytes }).toEqual(stored);
    expect(Buffer.from((await registry.get('mask.email')).bytes).equals(maskEmail)).toBe(true);
  });

  it('stores modules the sandbox loads under their ref', async () => {
    const registry = await FilterRegistry.open(tempDir());
    await registry.put('eu-orders', euOrders, { kind: 'filter' });
    const stored = await registry.get('eu-orders');
    const sandbox = new FilterSandbox();
    try {
      const status = await sandbox.load(stored.ref, stored.bytes, { kind: stored.kind });
      expect(status).toMatchObject({ id: 'eu-orders@1', state: 'active' });
    } finally {
      await sandbox.close();
    }
  });

  it('numbers versions 1, 2, 3 per name, and a bare name reads the latest', async () => {
    const registry = await FilterRegistry.open(tempDir());
    const versions = [];
    for (const bytes of [orderAmount, euOrders, splitItems])
      versions.push((await registry.put('orders', bytes, { kind: 'filter' })).version);
    expect(versions).toEqual([1, 2, 3]);
    expect((await registry.put('other', maskEmail, { kind: 'transform' })).version).toBe(1);

    expect(registry.describe('orders')).toMatchObject({ version: 3, sha256: sha256(splitItems) });
    expect(Buffer.from((await registry.get('orders@2')).bytes).equals(euOrders)).toBe(true);
    expect(Buffer.from((await registry.get('orders')).bytes).equals(splitItems)).toBe(true);
  });

  it('gives concurrent puts of one name distinct versions', async () => {
    const registry = await FilterRegistry.open(tempDir());
    const results = await Promise.all(
      [orderAmount, euOrders, splitItems, maskEmail].map((bytes) =>
        registry.put('orders', bytes, { kind: 'filter' }),
      ),
    );
    expect(results.map((result) => result.version).sort()).toEqual([1, 2, 3, 4]);
    for (const result of results) expect((await registry.get(result.ref)).sha256).toBe(result.sha256);
  });

  it('returns the latest version, writing nothing, when the same module is put again', async () => {
    const dir = tempDir();
    const registry = await FilterRegistry.open(dir);
    const first = await registry.put('orders', orderAmount, { kind: 'filter' });
    const files = filesUnder(dir);
    const again = await registry.put('orders', orderAmount, { kind: 'filter' });
    expect(again).toEqual({ ...first, created: false });
    expect(filesUnder(dir)).toEqual(files);

    // The same bytes as another kind, or after another version, are a new version.
    expect((await registry.put('orders', orderAmount, { kind: 'transform' })).version).toBe(2);
    expect((await registry.put('orders', euOrders, { kind: 'filter' })).version).toBe(3);
    expect(await registry.put('orders', orderAmount, { kind: 'filter' })).toMatchObject({
      version: 4,
      created: true,
    });
  });

  it('stores an explicit version and numbers the next ones after it', async () => {
    const registry = await FilterRegistry.open(tempDir());
    expect((await registry.put('orders', orderAmount, { kind: 'filter', version: 5 })).version).toBe(5);
    expect((await registry.put('orders', euOrders, { kind: 'filter' })).version).toBe(6);
    expect((await registry.put('orders', splitItems, { kind: 'filter', version: 9 })).version).toBe(9);
    expect(registry.list()[0]?.versions.map((version) => version.version)).toEqual([5, 6, 9]);
    // Putting a stored version again with the same module is a no-op.
    expect(await registry.put('orders', orderAmount, { kind: 'filter', version: 5 })).toMatchObject({
      version: 5,
      created: false,
    });
  });

  it('throws TypeError for arguments of the wrong type', async () => {
    const registry = await FilterRegistry.open(tempDir());
    const put = registry.put.bind(registry) as (...args: unknown[]) => Promise<unknown>;
    expect(() => put('orders', [1, 2, 3], { kind: 'filter' })).toThrow(TypeError);
    expect(() => put('orders', orderAmount, { kind: 'sieve' })).toThrow(TypeError);
    expect(() => put('orders', orderAmount)).toThrow(TypeError);
    expect(() => put('orders', orderAmount, { kind: 'filter', version: '2' })).toThrow(TypeError);
    expect(() => put(7, orderAmount, { kind: 'filter' })).toThrow(TypeError);
    expect(() => (registry.get as (ref: unknown) => unknown)(null)).toThrow(TypeError);
    expect(() => (registry.describe as (ref: unknown) => unknown)(1)).toThrow(TypeError);
    expect(() => (registry.delete as (ref: unknown) => unknown)(undefined)).toThrow(TypeError);
    await expect(FilterRegistry.open(tempDir(), { versionsMax: 0 })).rejects.toThrow(RangeError);
  });
});

describe('filters > registry > immutability', () => {
  it('refuses other bytes under a stored name@version and leaves the stored module as it was', async () => {
    const dir = tempDir();
    const registry = await FilterRegistry.open(dir);
    await registry.put('orders', orderAmount, { kind: 'filter', version: 1 });
    const files = filesUnder(dir);
    const error = await filterErrorOf(
      registry.put('orders', euOrders, { kind: 'filter', version: 1 }),
      'FILTER_VERSION_EXISTS',
    );
    expect(error.message).toContain('orders@1');
    await filterErrorOf(
      registry.put('orders', orderAmount, { kind: 'transform', version: 1 }),
      'FILTER_VERSION_EXISTS',
    );
    expect(filesUnder(dir)).toEqual(files);
    expect(Buffer.from((await registry.get('orders@1')).bytes).equals(orderAmount)).toBe(true);
  });

  it('never gives a version number out twice, even after deleting it or every version of the name', async () => {
    const dir = tempDir();
    let registry = await FilterRegistry.open(dir);
    await registry.put('orders', orderAmount, { kind: 'filter' });
    await registry.put('orders', euOrders, { kind: 'filter' });
    await registry.delete('orders@2');
    expect((await registry.put('orders', splitItems, { kind: 'filter' })).version).toBe(3);
    // An explicit version at or below one the name has had is refused, stored or not.
    await filterErrorOf(
      registry.put('orders', maskEmail, { kind: 'filter', version: 2 }),
      'FILTER_VERSION_EXISTS',
    );

    await registry.delete('orders');
    expect(registry.list()).toEqual([]);
    registry = await FilterRegistry.open(dir);
    expect((await registry.put('orders', maskEmail, { kind: 'filter' })).version).toBe(4);
  });
});

describe('filters > registry > invalid modules', () => {
  const cases: [string, () => Uint8Array, 'filter' | 'transform', FilterErrorName][] = [
    [
      'bytes that are not WebAssembly',
      () => new TextEncoder().encode('not wasm'),
      'filter',
      'FILTER_INVALID_MODULE',
    ],
    ['a WASI import', hostile.wasi, 'filter', 'FILTER_IMPORT_NOT_ALLOWED'],
    ['a module without the entry point of its kind', hostile.keepAll, 'transform', 'FILTER_EXPORT_MISSING'],
    ['a memory above the cap', hostile.hugeMemory, 'filter', 'FILTER_MEMORY_UNBOUNDED'],
  ];
  for (const [what, bytes, kind, name] of cases)
    it(`refuses ${what} with ${name}, storing nothing`, async () => {
      const dir = tempDir();
      const registry = await FilterRegistry.open(dir);
      const error = await filterErrorOf(registry.put('bad', bytes(), { kind }), name);
      expect((error as { filterId?: string }).filterId).toBe('bad');
      expect(registry.list()).toEqual([]);
      expect(fs.readdirSync(dir)).toEqual([]);
      await filterErrorOf(registry.get('bad'), 'FILTER_NOT_FOUND');
    });

  it('refuses a module above moduleBytesMax, storing nothing beside the versions already there', async () => {
    const dir = tempDir();
    const registry = await FilterRegistry.open(dir, {
      limits: { moduleBytesMax: Math.max(orderAmount.length, hostile.keepAll().length) },
    });
    await registry.put('orders', hostile.keepAll(), { kind: 'filter' });
    const files = filesUnder(dir);
    const larger = new Uint8Array(orderAmount.length + 1);
    larger.set(orderAmount);
    const error = await filterErrorOf(
      registry.put('orders', larger, { kind: 'filter' }),
      'FILTER_INVALID_MODULE',
    );
    expect(error.message).toContain('above the limit');
    expect(filesUnder(dir)).toEqual(files);
    expect(registry.describe('orders').version).toBe(1);
  });

  it('stores what it checked, not what the caller wrote into its array afterwards', async () => {
    const registry = await FilterRegistry.open(tempDir());
    const bytes = orderAmount.slice();
    const put = registry.put('orders', bytes, { kind: 'filter' });
    bytes.fill(0);
    expect((await put).sha256).toBe(sha256(orderAmount));
    expect(Buffer.from((await registry.get('orders')).bytes).equals(orderAmount)).toBe(true);
  });
});

describe('filters > registry > limits', () => {
  it('refuses more than versionsMax versions of a name until one is deleted', async () => {
    const registry = await FilterRegistry.open(tempDir(), { versionsMax: 2 });
    await registry.put('orders', orderAmount, { kind: 'filter' });
    await registry.put('orders', euOrders, { kind: 'filter' });
    await filterErrorOf(registry.put('orders', splitItems, { kind: 'filter' }), 'FILTER_TOO_MANY_VERSIONS');
    expect((await registry.put('other', splitItems, { kind: 'filter' })).version).toBe(1);
    await registry.delete('orders@1');
    expect((await registry.put('orders', splitItems, { kind: 'filter' })).version).toBe(3);
  });
});

describe('filters > registry > list, describe and delete', () => {
  it('lists every name, sorted, with its versions oldest first', async () => {
    const registry = await FilterRegistry.open(tempDir());
    await registry.put('zeta', orderAmount, { kind: 'filter' });
    await registry.put('alpha', maskEmail, { kind: 'transform' });
    await registry.put('alpha', splitItems, { kind: 'transform' });
    const list = registry.list();
    expect(list.map((entry) => [entry.name, entry.latestVersion])).toEqual([
      ['alpha', 2],
      ['zeta', 1],
    ]);
    expect(list[0]?.versions.map((version) => version.ref)).toEqual(['alpha@1', 'alpha@2']);
    expect(list[0]?.versions[1]).toEqual(registry.describe('alpha@2'));
    expect(list[0]?.versions[1]).not.toHaveProperty('bytes');
  });

  it('deletes one version, after which the bare name reads the latest left', async () => {
    const dir = tempDir();
    const registry = await FilterRegistry.open(dir);
    await registry.put('orders', orderAmount, { kind: 'filter' });
    await registry.put('orders', euOrders, { kind: 'filter' });
    await registry.put('orders', splitItems, { kind: 'filter' });

    const deleted = await registry.delete('orders@3');
    expect(deleted.map((version) => version.ref)).toEqual(['orders@3']);
    expect(registry.describe('orders').version).toBe(2);
    await filterErrorOf(registry.get('orders@3'), 'FILTER_NOT_FOUND');
    await filterErrorOf(registry.delete('orders@3'), 'FILTER_NOT_FOUND');
    expect(fs.existsSync(path.join(dir, 'orders', '3.wasm'))).toBe(false);
    expect(fs.existsSync(path.join(dir, 'orders', '3.json'))).toBe(false);
    expect((await registry.get('orders@1')).sha256).toBe(sha256(orderAmount));
  });

  it('deletes every version of a name given without a version', async () => {
    const dir = tempDir();
    const registry = await FilterRegistry.open(dir);
    await registry.put('orders', orderAmount, { kind: 'filter' });
    await registry.put('orders', euOrders, { kind: 'filter' });
    await registry.put('keep', maskEmail, { kind: 'transform' });

    const deleted = await registry.delete('orders');
    expect(deleted.map((version) => version.ref)).toEqual(['orders@1', 'orders@2']);
    expect(registry.list().map((entry) => entry.name)).toEqual(['keep']);
    await filterErrorOf(registry.get('orders'), 'FILTER_NOT_FOUND');
    expect(() => registry.describe('orders@1')).toThrow(/no filter named "orders"/);
    await filterErrorOf(registry.delete('orders'), 'FILTER_NOT_FOUND');
    expect(filesUnder(path.join(dir, 'orders'))).toEqual(['history.json']);
  });

  it('names the latest version when a ref names a version that is not stored', async () => {
    const registry = await FilterRegistry.open(tempDir());
    await registry.put('orders', orderAmount, { kind: 'filter' });
    const error = await filterErrorOf(registry.get('orders@7'), 'FILTER_NOT_FOUND');
    expect(error.message).toContain('orders@1');
    expect(() => registry.describe('nothing')).toThrow(/no filter named "nothing"/);
  });
});

describe('filters > registry > names and refs', () => {
  const badNames = [
    '',
    '.',
    '..',
    '.hidden',
    'a..b',
    'trailing.',
    'a b',
    'a/b',
    'a\\b',
    'ü',
    'x'.repeat(129),
  ];
  const badRefs = ['@1', 'orders@', 'orders@0', 'orders@01', 'orders@-1', 'orders@1.5', 'orders@x', 'a@1@2'];

  it('parses name and name@version', () => {
    expect(parseFilterRef('orders.eu_v2-beta')).toEqual({ name: 'orders.eu_v2-beta', version: null });
    expect(parseFilterRef('orders@12')).toEqual({ name: 'orders', version: 12 });
    expect(parseFilterRef('x'.repeat(128) + '@2147483647').version).toBe(2 ** 31 - 1);
    expect(() => parseFilterRef('orders@2147483648')).toThrow(/integer from 1 to/);
  });

  it('refuses a malformed name or ref with FILTER_INVALID_REF everywhere', async () => {
    const registry = await FilterRegistry.open(tempDir());
    for (const name of badNames) {
      await filterErrorOf(registry.put(name, orderAmount, { kind: 'filter' }), 'FILTER_INVALID_REF');
      await filterErrorOf(registry.get(name), 'FILTER_INVALID_REF');
      await filterErrorOf(registry.delete(name), 'FILTER_INVALID_REF');
      expect(
        isFilterError(
          thrownBy(() => registry.describe(name)),
          'FILTER_INVALID_REF',
        ),
      ).toBe(true);
    }
    for (const ref of badRefs) {
      await filterErrorOf(registry.get(ref), 'FILTER_INVALID_REF');
      await filterErrorOf(registry.delete(ref), 'FILTER_INVALID_REF');
    }
    // A ref is not a name: put takes the version apart.
    await filterErrorOf(registry.put('orders@2', orderAmount, { kind: 'filter' }), 'FILTER_INVALID_REF');
    for (const version of [0, -1, 1.5, NaN, 2 ** 31])
      await filterErrorOf(
        registry.put('orders', orderAmount, { kind: 'filter', version }),
        'FILTER_INVALID_REF',
      );
    expect(registry.list()).toEqual([]);
  });

  it('has a description for every error name it uses', () => {
    for (const name of [
      'FILTER_INVALID_REF',
      'FILTER_VERSION_EXISTS',
      'FILTER_TOO_MANY_VERSIONS',
      'FILTER_NOT_FOUND',
    ])
      expect(filterErrors).toHaveProperty(name);
  });
});

describe('filters > registry > durability', () => {
  it('sees every version, its metadata and bytes after a restart', async () => {
    const dir = tempDir();
    const first = await FilterRegistry.open(dir);
    await first.put('orders', orderAmount, { kind: 'filter' });
    await first.put('orders', euOrders, { kind: 'filter' });
    await first.put('mask', maskEmail, { kind: 'transform' });
    await first.delete('orders@1');
    const listed = first.list();

    const second = await FilterRegistry.open(dir);
    expect(second.list()).toEqual(listed);
    expect(Buffer.from((await second.get('mask@1')).bytes).equals(maskEmail)).toBe(true);
    expect((await second.put('orders', splitItems, { kind: 'filter' })).version).toBe(3);
    expect(filesUnder(path.join(dir, 'orders'))).toEqual([
      '2.json',
      '2.wasm',
      '3.json',
      '3.wasm',
      'history.json',
    ]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'orders', '2.json'), 'utf8'))).toEqual({
      format: 1,
      name: 'orders',
      version: 2,
      kind: 'filter',
      sha256: sha256(euOrders),
      sizeBytes: euOrders.length,
      createdAt: second.describe('orders@2').createdAt,
    });
  });

  it('clears what a crash left at open: temp files, modules without metadata, empty name directories', async () => {
    const dir = tempDir();
    const registry = await FilterRegistry.open(dir);
    await registry.put('orders', orderAmount, { kind: 'filter' });
    const names = path.join(dir, 'orders');
    // A put cut short while writing the module, after renaming it, and while writing its metadata.
    fs.writeFileSync(path.join(names, '.tmp-0123456789ab'), euOrders.subarray(0, 100));
    fs.writeFileSync(path.join(names, '2.wasm'), euOrders);
    fs.writeFileSync(path.join(names, '.tmp-ba9876543210'), '{"format":1,');
    // The first put of a new name cut short, and a temp file at the top.
    fs.mkdirSync(path.join(dir, 'fresh'));
    fs.writeFileSync(path.join(dir, 'fresh', '.tmp-aaaaaaaaaaaa'), 'x');
    fs.writeFileSync(path.join(dir, '.tmp-bbbbbbbbbbbb'), 'x');

    const reopened = await FilterRegistry.open(dir);
    expect(filesUnder(dir)).toEqual(['orders/1.json', 'orders/1.wasm']);
    expect(reopened.list().map((entry) => [entry.name, entry.latestVersion])).toEqual([['orders', 1]]);
    // Version 2 was never stored, so it is still the next.
    expect((await reopened.put('orders', euOrders, { kind: 'filter' })).version).toBe(2);
  });

  it('leaves alone what is not its own', async () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'lost+found'));
    fs.writeFileSync(path.join(dir, 'README'), 'notes');
    const registry = await FilterRegistry.open(dir);
    expect(registry.list()).toEqual([]);
    expect(fs.readdirSync(dir).sort()).toEqual(['README', 'lost+found']);
  });

  it('refuses to open over metadata that cannot be read or describes a missing module', async () => {
    const dir = tempDir();
    const registry = await FilterRegistry.open(dir);
    await registry.put('orders', orderAmount, { kind: 'filter' });
    const metadata = path.join(dir, 'orders', '1.json');
    const text = fs.readFileSync(metadata, 'utf8');

    fs.writeFileSync(metadata, text.replace('"kind": "filter"', '"kind": "sieve"'));
    await expect(FilterRegistry.open(dir)).rejects.toSatisfy((error) => isBrokerError(error, 'CORRUPT_DATA'));
    fs.writeFileSync(metadata, '{');
    await expect(FilterRegistry.open(dir)).rejects.toSatisfy((error) => isBrokerError(error, 'CORRUPT_DATA'));
    fs.writeFileSync(metadata, text);
    fs.rmSync(path.join(dir, 'orders', '1.wasm'));
    await expect(FilterRegistry.open(dir)).rejects.toSatisfy((error) => isBrokerError(error, 'CORRUPT_DATA'));
  });

  it('refuses to hand out a module whose bytes no longer match their hash', async () => {
    const dir = tempDir();
    const registry = await FilterRegistry.open(dir);
    await registry.put('orders', orderAmount, { kind: 'filter' });
    const module = path.join(dir, 'orders', '1.wasm');
    const damaged = Buffer.from(orderAmount);
    const last = damaged.length - 1;
    damaged.writeUInt8(damaged.readUInt8(last) ^ 0xff, last);
    fs.writeFileSync(module, damaged);
    await expect(registry.get('orders@1')).rejects.toSatisfy((error) => isBrokerError(error, 'CORRUPT_DATA'));
  });
});
