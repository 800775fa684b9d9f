/**
 * A WebAssembly filter over a stored event block, per event: the `order-amount` example filter
 * (filters/order-amount.ts, keeps orders whose JSON `amount` is above 100; about half are) over
 * blocks of 1,000 events with 100 bytes of JSON data each, loaded as `bench filter` loads it
 * (bench/wasm-filter.bench.ts; `npm run build` makes dist/filters/*.wasm).
 *
 * - `wasm-filter-instance`: `FilterInstance.run` on the calling thread: the guest and the host's
 *   ABI calls alone.
 * - `wasm-filter-sandbox`: `FilterSandbox.run`, one block at a time through the filter thread and
 *   its watchdog (the broker keeps several in flight: `bench filter` measures that pipeline).
 */
import { FilterSandbox } from '../../src/filters/wasm/index.js';
import { encodeEventBatch } from '../../src/protocol/index.js';
import { filterInstance, filterModule, orders } from '../wasm-filter.bench.js';
import type { MicroArea } from './case.js';

const FILTER = 'order-amount';
const BATCH_EVENTS = 1000;
const DATA_BYTES = 100;

export async function wasmArea(): Promise<MicroArea> {
  const block = encodeEventBatch(orders(BATCH_EVENTS, DATA_BYTES));
  const instance = await filterInstance(FILTER);
  const sandbox = new FilterSandbox({ pipelineDepth: 1 });
  try {
    await sandbox.load(FILTER, filterModule(FILTER), { kind: 'filter' });
  } catch (error) {
    await sandbox.close();
    throw error;
  }
  const params = { filter: FILTER, batchEvents: BATCH_EVENTS, dataBytes: DATA_BYTES, op: 'event' };
  return {
    cases: [
      {
        name: 'wasm-filter-instance',
        params: { ...params, thread: 'calling' },
        opsPerCall: BATCH_EVENTS,
        run: () => instance.run(block).keptCount,
      },
      {
        name: 'wasm-filter-sandbox',
        params: { ...params, thread: 'filter thread', inFlight: 1 },
        opsPerCall: BATCH_EVENTS,
        run: () => sandbox.run(FILTER, block, { compression: 'none' }),
      },
    ],
    close: () => sandbox.close(),
  };
}
