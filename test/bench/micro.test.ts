import os from 'node:os';
import { describe, expect, it } from 'vitest';
import {
  microAreaNames,
  runMicroBenchmark,
  type MicroAreaName,
  type MicroBenchResult,
} from '../../bench/micro.bench.js';
import { microAreaKinds, microAreaList, quickMicro, resolveMicroOptions } from '../../src/cli/bench.js';

/** The cases each area must report (name, and how many variants of it). */
const expectedCases: Readonly<Record<MicroAreaName, Readonly<Record<string, number>>>> = {
  frame: { 'frame-encode': 2, 'frame-decode': 2, 'frame-consume': 2 },
  verify: { 'verify-frame': 1, 'verify-event-batch': 1 },
  crc32c: { crc32c: 3 },
  log: { 'log-append': 4, 'log-read': 4 },
  ring: { 'ring-push-pop': 2, 'ring-cross-thread': 4 },
  cesql: { 'cesql-compile': 2, 'cesql-stored': 2 },
  wasm: { 'wasm-filter-instance': 1, 'wasm-filter-sandbox': 1 },
};

describe('bench > micro', () => {
  it('runs every case for a moment and reports one JSON line each: name, params, opsPerSec > 0, margin', async () => {
    const results: MicroBenchResult[] = [];
    const areas: string[] = [];
    for await (const result of runMicroBenchmark(
      { areas: microAreaNames, warmupMs: 1, durationMs: 10, minSamples: 1, sampleMs: 5, tmpDir: os.tmpdir() },
      (area) => areas.push(area),
    )) {
      results.push(JSON.parse(JSON.stringify(result)) as MicroBenchResult);
    }
    expect(areas).toEqual([...microAreaNames]);
    for (const result of results) {
      expect(Object.keys(result)).toEqual(['name', 'params', 'opsPerSec', 'margin', 'samples']);
      expect(typeof result.name).toBe('string');
      expect(typeof result.params['op']).toBe('string');
      expect(Number.isFinite(result.opsPerSec) && result.opsPerSec > 0, `${result.name} opsPerSec`).toBe(
        true,
      );
      expect(Number.isFinite(result.margin) && result.margin >= 0).toBe(true);
      expect(result.samples).toBeGreaterThanOrEqual(1);
    }
    const counted: Record<string, number> = {};
    for (const result of results) counted[result.name] = (counted[result.name] ?? 0) + 1;
    expect(counted).toEqual(Object.assign({}, ...Object.values(expectedCases)));
  }, 20_000);

  it('runs only the areas asked for', async () => {
    const names: string[] = [];
    for await (const result of runMicroBenchmark({
      areas: ['crc32c'],
      warmupMs: 0,
      durationMs: 5,
      minSamples: 1,
      sampleMs: 2,
      tmpDir: os.tmpdir(),
    }))
      names.push(`${result.name} ${result.params['bytes']}`);
    expect(names).toEqual(['crc32c 100', 'crc32c 1024', 'crc32c 65536']);
  });
});

describe('cli > bench > micro > arguments', () => {
  it('knows the same areas as the benchmark it loads', () => {
    expect(microAreaKinds).toEqual(microAreaNames);
  });

  it('takes one area or several, once each, and rejects others', () => {
    expect(microAreaList('ring')).toEqual(['ring']);
    expect(microAreaList('wasm,crc32c,wasm')).toEqual(['wasm', 'crc32c']);
    expect(() => microAreaList('frames')).toThrow(/expected scenarios among frame, verify/);
  });

  it('shortens every case with --quick, except for what is given alongside', () => {
    const options = {
      quick: true,
      scenario: ['frame' as const],
      warmupMs: 200,
      durationMs: 1000,
      minSamples: 5,
    };
    expect(resolveMicroOptions(options, () => false)).toMatchObject({
      warmupMs: quickMicro.warmupMs,
      durationMs: quickMicro.durationMs,
      minSamples: quickMicro.minSamples,
      sampleMs: quickMicro.sampleMs,
    });
    expect(
      resolveMicroOptions({ ...options, durationMs: 500 }, (name) => name === 'durationMs'),
    ).toMatchObject({ durationMs: 500, minSamples: quickMicro.minSamples });
    expect(resolveMicroOptions({ ...options, quick: false }, () => false)).toMatchObject({
      durationMs: 1000,
    });
  });
});
