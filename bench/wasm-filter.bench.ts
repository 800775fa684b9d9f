/**
 * WebAssembly filter benchmark: events per second of the example content
 * filter (filters/order-amount.ts: keep orders whose JSON `amount` is above
 * 100) over stored batches of 1000 events with 100 bytes of JSON data each,
 * and of the PII-masking transform for comparison. Scenarios:
 *
 *   instance         the guest alone, on the calling thread (FilterInstance)
 *   sandbox          through FilterSandbox: a filter thread with a watchdog,
 *                    `pipelineDepth` batches in flight (what the broker runs)
 *   sandbox-lz4      the same over LZ4-compressed batches (inflated by the host)
 *   transform        the masking transform through the sandbox
 *
 * Each scenario warms up, then runs timed rounds; the result is the median
 * round. The issue's target is 3,000,000 events/s for the content filter on
 * stored batches. Needs `npm run build` (dist/ holds the filter thread's
 * entry and dist/filters/*.wasm).
 */
import fs from 'node:fs';
import { compressSync } from 'lz4-napi';
import { FilterInstance, FilterSandbox, checkModule, filterLimits } from '../src/filters/wasm/index.js';
import { encodeEventBatch, type EventFields } from '../src/protocol/index.js';

export interface WasmFilterBenchOptions {
  /** Timed duration of each round. */
  readonly durationMs: number;
  /** Untimed run before the rounds (JIT tiers, thread start-up). */
  readonly warmupMs: number;
  readonly rounds: number;
  readonly batchEvents: number;
  /** Bytes of JSON data per event. */
  readonly dataBytes: number;
  /** Batches in flight to the filter thread. */
  readonly pipelineDepth: number;
}

export const defaultWasmFilterBenchOptions: WasmFilterBenchOptions = {
  durationMs: 1000,
  warmupMs: 300,
  rounds: 3,
  batchEvents: 1000,
  dataBytes: 100,
  pipelineDepth: 4,
};

export interface WasmFilterBenchResult {
  readonly name: string;
  readonly params: Readonly<Record<string, string | number>>;
  readonly eventsPerSec: number;
  /** Share of the events kept (filters) or emitted per input event (transforms). */
  readonly matchRatio: number;
  readonly eventsPerSecRounds: readonly number[];
}

/** dist/filters/<name>.wasm, from the build (dist/bench/) or from the sources (bench/). */
export function filterModule(name: string): Uint8Array {
  const url = import.meta.url.endsWith('.ts')
    ? new URL(`../dist/filters/${name}.wasm`, import.meta.url)
    : new URL(`../filters/${name}.wasm`, import.meta.url);
  if (!fs.existsSync(url)) throw new Error(`${url.pathname} is missing: run npm run build`);
  return new Uint8Array(fs.readFileSync(url));
}

/** Orders with JSON data of exactly `dataBytes` bytes, amounts 0..199 (about half above 100). */
export function orders(count: number, dataBytes: number): EventFields[] {
  const encoder = new TextEncoder();
  return Array.from({ length: count }, (_, i) => {
    const fields = `{"orderId":"o-${String(i).padStart(6, '0')}","amount":${(i * 37) % 200},"email":"user${i % 97}@example.com","note":"`;
    const json = `${fields}${'x'.repeat(Math.max(0, dataBytes - fields.length - 2))}"}`;
    return {
      id: `evt-${String(i).padStart(6, '0')}`,
      source: '/shop/orders',
      type: 'com.example.order.created',
      time: '2026-01-02T03:04:05Z',
      datacontenttype: 'application/json',
      data: encoder.encode(json),
    };
  });
}

interface Scenario {
  readonly name: string;
  readonly params: Readonly<Record<string, string | number>>;
  /** Runs batches for about `durationMs`; events processed and events kept or emitted. */
  round(durationMs: number): Promise<{ events: number; matched: number }>;
  close(): Promise<void>;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

/** An example filter (dist/filters/<name>.wasm) instantiated on the calling thread, started. */
export async function filterInstance(name: string): Promise<FilterInstance> {
  const limits = filterLimits();
  const checked = await checkModule(filterModule(name), 'filter', limits);
  const instance = new FilterInstance(checked.module, {
    kind: 'filter',
    memory: checked.memory,
    limits,
    stopAtFirstFailure: false,
  });
  instance.start();
  return instance;
}

async function instanceScenario(block: Uint8Array, count: number): Promise<Scenario> {
  const instance = await filterInstance('order-amount');
  return {
    name: 'wasm-filter-instance',
    params: { filter: 'order-amount', thread: 'calling' },
    round: async (durationMs) => {
      let events = 0;
      let matched = 0;
      const start = performance.now();
      while (performance.now() - start < durationMs) {
        for (let i = 0; i < 10; i++) matched += instance.run(block).keptCount;
        events += 10 * count;
      }
      return { events, matched };
    },
    close: async () => {},
  };
}

/** Keeps `depth` batches in flight through the sandbox until `durationMs` has passed. */
async function pipelined(
  depth: number,
  durationMs: number,
  runOne: () => Promise<{ events: number; matched: number }>,
): Promise<{ events: number; matched: number }> {
  let events = 0;
  let matched = 0;
  const until = performance.now() + durationMs;
  const lane = async (): Promise<void> => {
    while (performance.now() < until) {
      const result = await runOne();
      events += result.events;
      matched += result.matched;
    }
  };
  await Promise.all(Array.from({ length: depth }, lane));
  return { events, matched };
}

async function sandboxScenario(
  name: string,
  module: string,
  kind: 'filter' | 'transform',
  block: Uint8Array,
  compression: 'none' | 'lz4',
  depth: number,
): Promise<Scenario> {
  const sandbox = new FilterSandbox({ pipelineDepth: depth });
  await sandbox.load(module, filterModule(module), { kind });
  return {
    name,
    params: { filter: module, compression, pipelineDepth: depth },
    round: (durationMs) =>
      pipelined(depth, durationMs, async () => {
        const outcome = await sandbox.run(module, block, { compression });
        return {
          events: outcome.eventCount,
          matched: outcome.kind === 'filter' ? outcome.keptCount : outcome.outputCount,
        };
      }),
    close: () => sandbox.close(),
  };
}

export async function* runWasmFilterBenchmark(
  options: WasmFilterBenchOptions = defaultWasmFilterBenchOptions,
): AsyncGenerator<WasmFilterBenchResult> {
  const events = orders(options.batchEvents, options.dataBytes);
  const block = encodeEventBatch(events);
  const compressed = new Uint8Array(compressSync(Buffer.from(block)));
  const shared = {
    batchEvents: options.batchEvents,
    dataBytes: options.dataBytes,
    blockBytesPerEvent: Math.round(block.length / options.batchEvents),
  };
  const scenarios = [
    () => instanceScenario(block, options.batchEvents),
    () =>
      sandboxScenario('wasm-filter-sandbox', 'order-amount', 'filter', block, 'none', options.pipelineDepth),
    () =>
      sandboxScenario(
        'wasm-filter-sandbox-lz4',
        'order-amount',
        'filter',
        compressed,
        'lz4',
        options.pipelineDepth,
      ),
    () =>
      sandboxScenario(
        'wasm-transform-sandbox',
        'mask-email',
        'transform',
        block,
        'none',
        options.pipelineDepth,
      ),
  ];
  for (const create of scenarios) {
    const scenario = await create();
    try {
      await scenario.round(options.warmupMs);
      const rounds: number[] = [];
      let matchRatio = 0;
      for (let round = 0; round < options.rounds; round++) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        const start = performance.now();
        const result = await scenario.round(options.durationMs);
        rounds.push(Math.round((result.events * 1000) / (performance.now() - start)));
        matchRatio = result.matched / result.events;
      }
      yield {
        name: scenario.name,
        params: { ...scenario.params, ...shared },
        eventsPerSec: median(rounds),
        matchRatio: Math.round(matchRatio * 1000) / 1000,
        eventsPerSecRounds: rounds,
      };
    } finally {
      await scenario.close();
    }
  }
}
