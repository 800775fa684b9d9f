import { compressSync } from 'lz4-napi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FilterInstance,
  FilterSandbox,
  checkModule,
  filterLimits,
  isKept,
} from '../../src/filters/wasm/index.js';
import type { FilterOutcome, TransformOutcome } from '../../src/filters/wasm/index.js';
import { PartitionLog } from '../../src/log/index.js';
import fs from 'node:fs';
import {
  EventSlot,
  ExtensionSlot,
  decodeEventBatch,
  encodeEventBatch,
  type EventFields,
} from '../../src/protocol/index.js';
import { fullEventFields } from '../helpers/event-fields.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import { buildExamples, exampleModule } from './fixtures/wasm-examples.js';

const tempDir = useTempDirs('wasm-examples');
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function order(id: string, data: string | null, extra: Partial<EventFields> = {}): EventFields {
  return {
    id,
    source: '/shop/orders',
    type: 'com.example.order.created',
    datacontenttype: 'application/json',
    ...(data === null ? {} : { data: encoder.encode(data) }),
    ...extra,
  };
}

function kept(outcome: FilterOutcome): number[] {
  return Array.from({ length: outcome.eventCount }, (_, i) => i).filter((i) => isKept(outcome.keep, i));
}

/** The context attributes of an event, without its data and extensions. */
function attributesOf(event: EventFields): Record<string, unknown> {
  return Object.fromEntries(Object.entries(event).filter(([key]) => key !== 'data' && key !== 'extensions'));
}

function dataOf(event: EventFields): string {
  return decoder.decode(event.data);
}

let sandbox: FilterSandbox;

beforeAll(async () => {
  buildExamples();
  sandbox = new FilterSandbox();
  await sandbox.load('order-amount', exampleModule('order-amount'), { kind: 'filter' });
  await sandbox.load('eu-orders', exampleModule('eu-orders'), { kind: 'filter' });
  await sandbox.load('mask-email', exampleModule('mask-email'), { kind: 'transform' });
  await sandbox.load('split-items', exampleModule('split-items'), { kind: 'transform' });
}, 120_000);

afterAll(() => sandbox?.close());

async function filter(id: string, events: EventFields[]): Promise<FilterOutcome> {
  return (await sandbox.run(id, encodeEventBatch(events))) as FilterOutcome;
}

async function transform(id: string, events: EventFields[]): Promise<TransformOutcome> {
  return (await sandbox.run(id, encodeEventBatch(events))) as TransformOutcome;
}

describe('filters > wasm > sdk', () => {
  it('reads and writes each event and extension field at its vtable slot in eddy.fbs', () => {
    const source = fs.readFileSync(new URL('../../wasm/event.ts', import.meta.url), 'utf8');
    const declared = (prefix: string): Record<string, number> =>
      Object.fromEntries(
        [...source.matchAll(new RegExp(`const ${prefix}_(\\w+): i32 = (\\d+);`, 'g'))].map(
          ([, name, slot]) => [name!.toLowerCase(), Number(slot)],
        ),
      );
    expect(declared('EVENT')).toEqual(EventSlot);
    expect(declared('EXTENSION')).toEqual(ExtensionSlot);
  });
});

describe('filters > wasm > examples > order-amount', () => {
  it('keeps orders whose JSON amount is above 100 and drops the rest', async () => {
    const outcome = await filter('order-amount', [
      order('a', '{"orderId":"o-1","amount":50}'),
      order('b', '{"orderId":"o-2","amount":150}'),
      order('c', '{"amount":100}'),
      order('d', '{"amount":100.25,"currency":"EUR"}'),
      order('e', '{"amount":1e3}'),
      order('f', '{"amount":-200}'),
      order('g', '{"orderId":"o-7"}'),
      order('h', null),
    ]);
    expect(kept(outcome)).toEqual([1, 3, 4]);
    expect(outcome).toMatchObject({ kind: 'filter', eventCount: 8, keptCount: 3, failures: [] });
  });

  it('finds the field however the JSON is spaced or escaped, and only at the top level', async () => {
    const outcome = await filter('order-amount', [
      order('a', '{ "orderId" : "o-1" ,\n "amount" : 120 }'),
      order('b', '{"am\\u006funt":500}'),
      order('c', '{"customer":{"amount":500},"amount":5}'),
      order('d', '{"note":"\\"amount\\":999","amount":1}'),
      order('e', '{"items":[{"amount":900}],"amount":101}'),
      order('f', '{"amount":"500"}'),
    ]);
    expect(kept(outcome)).toEqual([0, 1, 4]);
  });

  it('reads cut-off or odd JSON without failing, dropping what it cannot find', async () => {
    const outcome = await filter('order-amount', [
      order('a', '{"amount":'),
      order('b', '{"amount":500'),
      order('c', 'amount=500'),
      order('d', '{"amount":9e99999}'),
      order('e', '{"a":"unterminated'),
      order('f', '{"amount":200}'),
    ]);
    expect(kept(outcome)).toEqual([1, 3, 5]);
    expect(outcome.failures).toEqual([]);
  });

  it('filters a batch of 1000 events in one call', async () => {
    const events = Array.from({ length: 1000 }, (_, i) =>
      order(`e-${i}`, JSON.stringify({ orderId: i, amount: i % 200 })),
    );
    const outcome = await filter('order-amount', events);
    expect(outcome.keptCount).toBe(1000 - 5 * 101);
    expect(kept(outcome).every((i) => i % 200 > 100)).toBe(true);
  });

  it('filters an LZ4-compressed block, inflated by the host', async () => {
    const block = encodeEventBatch([order('a', '{"amount":101}'), order('b', '{"amount":7}')]);
    const outcome = (await sandbox.run('order-amount', compressSync(Buffer.from(block)), {
      compression: 'lz4',
    })) as FilterOutcome;
    expect(kept(outcome)).toEqual([0]);
  });

  it('filters stored batches as the log returns them, compressed or not', async () => {
    const log = await PartitionLog.open(tempDir(), { segmentBytes: 1 << 20 });
    try {
      const events = [order('a', '{"amount":300}'), order('b', '{"amount":3}'), order('c', '{"amount":301}')];
      await log.append(encodeEventBatch(events), { recordCount: 3 });
      await log.append(compressSync(Buffer.from(encodeEventBatch(events.slice(1)))), {
        recordCount: 2,
        compression: 'lz4',
        key: new Uint8Array([1, 2, 3]),
      });
      const bytes = log.read(0, 1 << 20).bytes;
      const first = (await sandbox.runStoredBatch('order-amount', bytes)) as FilterOutcome;
      expect(kept(first)).toEqual([0, 2]);
      const size = new DataView(bytes.buffer, bytes.byteOffset).getUint32(8, true);
      const second = (await sandbox.runStoredBatch('order-amount', bytes.subarray(size))) as FilterOutcome;
      expect(kept(second)).toEqual([1]);
    } finally {
      await log.close();
    }
  });

  it('runs the same way in-process through FilterInstance', async () => {
    const limits = filterLimits();
    const checked = await checkModule(exampleModule('order-amount'), 'filter', limits);
    const instance = new FilterInstance(checked.module, {
      kind: 'filter',
      memory: checked.memory,
      limits,
      stopAtFirstFailure: false,
    });
    instance.start();
    const reply = instance.run(encodeEventBatch([order('a', '{"amount":1}'), order('b', '{"amount":1000}')]));
    expect(() => instance.run(new Uint8Array(4))).toThrow(/shorter than an EventBatch/);
    expect(reply).toMatchObject({ eventCount: 2, keptCount: 1, failures: [] });
    expect(isKept(reply.keep as Uint8Array, 1)).toBe(true);
  });
});

describe('filters > wasm > examples > eu-orders', () => {
  it('reads attributes and extensions in place: the region extension first, else the subject', async () => {
    const outcome = await filter('eu-orders', [
      order('a', null, { extensions: [{ name: 'region', kind: 'string', value: 'eu' }] }),
      order('b', null, { extensions: [{ name: 'region', kind: 'string', value: 'us' }], subject: 'eu/1' }),
      order('c', null, { subject: 'eu/orders/7' }),
      order('d', null, { subject: 'us/orders/7' }),
      order('e', null, { type: 'com.example.order.shipped', subject: 'eu/1' }),
      order('f', null, {
        extensions: [
          { name: 'attempt', kind: 'integer', value: 3 },
          { name: 'region', kind: 'string', value: 'eu' },
          { name: 'zone', kind: 'string', value: 'x' },
        ],
      }),
      order('g', null),
    ]);
    expect(kept(outcome)).toEqual([0, 2, 5]);
  });
});

describe('filters > wasm > examples > mask-email', () => {
  it('masks the email of JSON data and marks the event, keeping everything else', async () => {
    const source: EventFields = {
      ...fullEventFields,
      data: encoder.encode('{"orderId":"o-1","email":"alice@example.com","amount":3}'),
    };
    const outcome = await transform('mask-email', [source]);
    expect(outcome).toMatchObject({ kind: 'transform', eventCount: 1, outputCount: 1, failures: [] });
    const [masked] = decodeEventBatch(outcome.block);
    expect(dataOf(masked!)).toBe('{"orderId":"o-1","email":"a***@example.com","amount":3}');
    expect(attributesOf(masked!)).toEqual(attributesOf(source));
    // The new extension takes its place in name order.
    expect(masked!.extensions).toEqual(
      [...(source.extensions ?? []), { name: 'piimasked', kind: 'boolean', value: true }].sort((a, b) =>
        a.name < b.name ? -1 : 1,
      ),
    );
  });

  it('passes events without an email string unchanged, and masks addresses without a local part whole', async () => {
    const events = [
      order('a', '{"orderId":"o-1"}'),
      order('b', null),
      order('c', '{"email":42}'),
      order('d', '{"email":"nobody"}'),
      order('e', '{"contact":{"email":"x@y.z"},"email":"bob@example.org"}'),
    ];
    const outcome = await transform('mask-email', events);
    const output = decodeEventBatch(outcome.block);
    expect(output.slice(0, 3)).toEqual(decodeEventBatch(encodeEventBatch(events.slice(0, 3))));
    expect(dataOf(output[3]!)).toBe('{"email":"***"}');
    expect(dataOf(output[4]!)).toBe('{"contact":{"email":"x@y.z"},"email":"b***@example.org"}');
  });
});

describe('filters > wasm > examples > split-items', () => {
  it('splits an order into one event per item, each pointing back at the order', async () => {
    const source = order(
      'order-9',
      '{"orderId":"o-9","items":[{"sku":"a","qty":1}, {"sku":"b","qty":2} ,"c"]}',
      {
        extensions: [{ name: 'region', kind: 'string', value: 'eu' }],
        subject: 'orders/9',
      },
    );
    const outcome = await transform('split-items', [source]);
    expect(outcome).toMatchObject({ eventCount: 1, outputCount: 3, failures: [] });
    const output = decodeEventBatch(outcome.block);
    expect(output.map((event) => event.id)).toEqual(['order-9-0', 'order-9-1', 'order-9-2']);
    expect(output.map(dataOf)).toEqual(['{"sku":"a","qty":1}', '{"sku":"b","qty":2}', '"c"']);
    for (const event of output) {
      expect(event).toMatchObject({
        type: 'com.example.order.created.item',
        source: '/shop/orders',
        subject: 'orders/9',
        datacontenttype: 'application/json',
      });
      expect(event.extensions).toEqual([
        { name: 'causationid', kind: 'string', value: 'order-9' },
        { name: 'region', kind: 'string', value: 'eu' },
      ]);
    }
  });

  it('passes events without items, drops orders with none, and keeps the batch order', async () => {
    const outcome = await transform('split-items', [
      order('a', '{"items":[1,2]}'),
      order('b', '{"note":"no items"}'),
      order('c', '{"items":[]}'),
      order('d', '{"items":[3]}'),
    ]);
    expect(decodeEventBatch(outcome.block).map((event) => event.id)).toEqual(['a-0', 'a-1', 'b', 'd-0']);
  });

  it('leaves out only the event whose output breaks a limit, keeping the rest of the batch', async () => {
    const limited = new FilterSandbox({ limits: { outputEventsMax: 10 } });
    try {
      await limited.load('split-items', exampleModule('split-items'), {
        kind: 'transform',
        onTrap: 'dead-letter',
      });
      const items = (count: number): string =>
        JSON.stringify({ items: Array.from({ length: count }, (_, i) => i) });
      const outcome = (await limited.run(
        'split-items',
        encodeEventBatch([order('a', items(3)), order('b', items(20)), order('c', items(2))]),
      )) as TransformOutcome;
      expect(decodeEventBatch(outcome.block).map((event) => event.id)).toEqual([
        'a-0',
        'a-1',
        'a-2',
        'c-0',
        'c-1',
      ]);
      expect(outcome.failures).toHaveLength(1);
      expect(outcome.failures[0]).toMatchObject({
        index: 1,
        action: 'dead-letter',
        error: { errorName: 'FILTER_BAD_OUTPUT' },
      });
    } finally {
      await limited.close();
    }
  });

  it('splits a batch into more events than it held', async () => {
    const items = JSON.stringify({ items: Array.from({ length: 20 }, (_, i) => ({ sku: `s-${i}` })) });
    const events = Array.from({ length: 100 }, (_, i) => order(`o-${i}`, items));
    const outcome = await transform('split-items', events);
    expect(outcome.outputCount).toBe(2000);
    const output = decodeEventBatch(outcome.block);
    expect(output[1999]).toMatchObject({ id: 'o-99-19', data: encoder.encode('{"sku":"s-19"}') });
  });
});
