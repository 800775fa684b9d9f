/**
 * Micro-benchmarks (`eddy bench micro`): what the SDK and the broker pay per event in each step
 * of the publish and delivery paths, each step alone on the calling thread, with benny (and so
 * benchmark.js underneath: a calibrated loop per sample, samples until `durationMs` has passed,
 * the relative margin of error at 95 % confidence). One file per area in bench/micro/:
 *
 *   frame    encode a PublishBatch frame as the SDK does, decode it as the broker does
 *   verify   the TypeScript FlatBuffers verifier over a frame and over its event block
 *   crc32c   the native CRC32C over 100 B, 1 KiB and 64 KiB
 *   log      PartitionLog append (flush: never) and read, in a temp dir
 *   ring     the SPSC ring between threads: push/pop in one thread, and to a worker thread
 *   cesql    compiling an expression, and evaluating it over a stored event block
 *   wasm     an example WASM filter over a stored event block, inline and through its thread
 *
 * A case whose one call handles a batch reports operations per event (or per message): its
 * `opsPerSec` is benny's calls per second times the events of the call, and `params.op` says
 * what one operation is. Each result is one JSON object: `name`, `params`, `opsPerSec`, `margin`
 * (benny's relative margin of error, in percent of the mean) and `samples`.
 */
import os from 'node:os';
import benny from 'benny';
import type { MicroArea, MicroAreaName, MicroCase } from './micro/case.js';
import { microAreaNames } from './micro/case.js';

export { microAreaNames, type MicroAreaName } from './micro/case.js';

export interface MicroBenchOptions {
  /** The areas to run, in `microAreaNames` order whatever the order given. */
  readonly areas: readonly MicroAreaName[];
  /** How long each case runs before benny starts on it, so that benny samples optimised code. */
  readonly warmupMs: number;
  /** How long benny samples each case (its `maxTime`), after calibrating the loop. */
  readonly durationMs: number;
  /** Samples each case takes at least, however long that takes. */
  readonly minSamples: number;
  /** Shortest sample (benchmark.js' `minTime`); the loop runs as many calls as that takes. */
  readonly sampleMs: number;
  /** Where `log` makes its temp dir (the disk being measured). */
  readonly tmpDir: string;
}

export const defaultMicroBenchOptions: MicroBenchOptions = {
  areas: microAreaNames,
  warmupMs: 200,
  durationMs: 1000,
  minSamples: 5,
  sampleMs: 50,
  tmpDir: os.tmpdir(),
};

export interface MicroBenchResult {
  readonly name: string;
  readonly params: Readonly<Record<string, string | number>>;
  /** Operations (as `params.op` names them) per second. */
  readonly opsPerSec: number;
  /** Relative margin of error at 95 %, in percent of the mean. */
  readonly margin: number;
  readonly samples: number;
}

async function openArea(name: MicroAreaName, options: MicroBenchOptions): Promise<MicroArea> {
  switch (name) {
    case 'frame':
      return (await import('./micro/frame.js')).frameArea();
    case 'verify':
      return (await import('./micro/verify.js')).verifyArea();
    case 'crc32c':
      return (await import('./micro/crc32c.js')).crc32cArea();
    case 'log':
      return (await import('./micro/log.js')).logArea({ tmpDir: options.tmpDir });
    case 'ring':
      return (await import('./micro/ring.js')).ringArea();
    case 'cesql':
      return (await import('./micro/cesql.js')).cesqlArea();
    case 'wasm':
      return (await import('./micro/wasm.js')).wasmArea();
  }
}

/**
 * benny announces each suite with `console.log`, on stdout, where the results go (one JSON
 * object per line): its chatter is kept off stdout while it runs.
 */
async function quietly<T>(body: () => Promise<T>): Promise<T> {
  const log = console.log;
  console.log = () => undefined;
  try {
    return await body();
  } finally {
    console.log = log;
  }
}

/** The case's label in benny's suite: name and params, unique within an area. */
function label(benchCase: MicroCase): string {
  const params = Object.entries(benchCase.params)
    .map(([key, value]) => `${key}=${value}`)
    .join(' ');
  return `${benchCase.name} ${params}`;
}

/**
 * Calls `benchCase` for `ms` (at least once), letting the event loop turn every millisecond:
 * the JIT's tiers are done before benny's first sample, and a case that throws says why here,
 * with its stack, rather than as a benchmark.js error event.
 */
async function warmUp(benchCase: MicroCase, ms: number): Promise<void> {
  const until = performance.now() + ms;
  do {
    const turn = performance.now() + 1;
    do {
      const returned = benchCase.run();
      if (returned instanceof Promise) await returned;
    } while (performance.now() < turn);
    await new Promise((resolve) => setImmediate(resolve));
  } while (performance.now() < until);
}

/** Runs one area's cases through benny; one result per case, in order. */
async function runArea(
  areaName: MicroAreaName,
  area: MicroArea,
  options: MicroBenchOptions,
): Promise<MicroBenchResult[]> {
  for (const benchCase of area.cases) await warmUp(benchCase, options.warmupMs);
  // benny hands case options through to benchmark.js, `async` too although its types leave it
  // out: cycles then start on timers, so that the event loop turns between them (the log
  // prepares segments and deletes old ones there, as it would between a broker's callbacks).
  const cases = {
    maxTime: options.durationMs / 1000,
    minSamples: options.minSamples,
    minTime: options.sampleMs / 1000,
    async: true,
  };
  const summary = await quietly(() =>
    benny.suite(
      areaName,
      benny.configure({ cases, minDisplayPrecision: 2 }),
      ...area.cases.map((benchCase) => benny.add(label(benchCase), benchCase.run)),
    ),
  );
  return area.cases.map((benchCase, index) => {
    const result = summary.results[index];
    if (result === undefined || result.name !== label(benchCase) || result.samples === 0)
      throw new Error(`${label(benchCase)}: benny returned no samples (the case threw?)`);
    return {
      name: benchCase.name,
      params: benchCase.params,
      opsPerSec: Math.round(result.ops * benchCase.opsPerCall),
      margin: result.margin,
      samples: result.samples,
    };
  });
}

/** Runs the areas one after another and yields each case's result as its area finishes. */
export async function* runMicroBenchmark(
  options: MicroBenchOptions,
  onArea: ((area: MicroAreaName, cases: number) => void) | null = null,
): AsyncGenerator<MicroBenchResult> {
  for (const name of microAreaNames) {
    if (!options.areas.includes(name)) continue;
    const area = await openArea(name, options);
    let results: MicroBenchResult[];
    try {
      onArea?.(name, area.cases.length);
      results = await runArea(name, area, options);
    } finally {
      await area.close();
    }
    yield* results;
  }
}
