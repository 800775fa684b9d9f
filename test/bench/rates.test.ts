/**
 * Offered rates past what a broker holds: how a latency run is judged held or overloaded, the
 * search for the highest rate held (`--rates …,max`), and the `--rates` arguments.
 */
import { CommanderError, type Command } from 'commander';
import { describe, expect, it } from 'vitest';
import {
  HELD_P99_MS,
  heldRate,
  searchMaxRate,
  type MaxRateProbe,
  type ScenarioResult,
} from '../../bench/broker.bench.js';
import { benchCommand } from '../../src/cli/bench.js';

const latency = (p99: number) => ({ p50: p99 / 4, p95: p99 / 2, p99, p999: p99 * 2, max: p99 * 3 });

/**
 * A system that holds up to `capacity` events/s: what a run at `rate` would report of it, with
 * every rate it was asked for recorded in `asked`.
 */
function systemHolding(capacity: number, asked: number[]): (rate: number) => Promise<ScenarioResult> {
  return (rate) => {
    asked.push(rate);
    const held = rate <= capacity;
    return Promise.resolve({
      name: 'publish-latency',
      params: { eventBytes: 100, publishers: 1, rate },
      eventsPerSec: Math.min(rate, capacity),
      mbPerSec: 0,
      latencyMs: latency(held ? 3 : 4000),
      events: Math.min(rate, capacity) * 5,
      durationMs: 5000,
      ...(held ? {} : { overloaded: true as const }),
    });
  };
}

/** Parses `eddy bench <suite> <args>` without running it: the options its action would get, or the error. */
function parse(suite: string, args: string[]): { rates?: unknown; sendIntervalMs?: unknown; error?: string } {
  const bench = benchCommand();
  let rates: unknown;
  let sendIntervalMs: unknown;
  let error: string | undefined;
  for (const command of [bench, ...bench.commands]) {
    command.exitOverride().configureOutput({ writeErr: (text) => (error = text.trim()), writeOut: () => {} });
  }
  (bench.commands.find((command) => command.name() === suite) as Command).action(
    (parsed: { rates: unknown; sendIntervalMs: unknown }) => {
      rates = parsed.rates;
      sendIntervalMs = parsed.sendIntervalMs;
    },
  );
  try {
    bench.parse([suite, ...args], { from: 'user' });
  } catch (thrown) {
    if (!(thrown instanceof CommanderError)) throw thrown;
  }
  return {
    ...(rates === undefined ? {} : { rates, sendIntervalMs }),
    ...(error === undefined ? {} : { error }),
  };
}

describe('bench > offered rates', () => {
  it('holds a rate only with every event sent, 98 % of it achieved and p99 under the bound', () => {
    expect(heldRate(100_000, 99_950, 0, latency(4.6))).toBe(true);
    expect(heldRate(100_000, 97_000, 0, latency(4.6))).toBe(false);
    expect(heldRate(100_000, 99_950, 12, latency(4.6))).toBe(false);
    expect(heldRate(100_000, 99_950, 0, latency(HELD_P99_MS))).toBe(false);
    expect(heldRate(100_000, 99_950, 0, undefined)).toBe(false);
  });

  it('finds the highest rate held between the listed rates of the same load, within 10 %', async () => {
    const asked: number[] = [];
    const known: MaxRateProbe[] = [
      { rate: 20_000, held: true },
      { rate: 100_000, held: true },
      { rate: 200_000, held: false },
      { rate: 500_000, held: false },
    ];
    const result = await searchMaxRate(known, systemHolding(137_000, asked));
    expect(asked).toEqual([141_000, 119_000, 130_000]);
    expect(result.params.rate).toBe(130_000);
    expect(result.overloaded).toBeUndefined();
    expect(result.maxRateProbes).toEqual([
      { rate: 141_000, held: false },
      { rate: 119_000, held: true },
      { rate: 130_000, held: true },
    ]);
  });

  it('doubles from the first rate when nothing is known, then narrows', async () => {
    const asked: number[] = [];
    const result = await searchMaxRate([], systemHolding(260_000, asked));
    expect(asked.slice(0, 4)).toEqual([50_000, 100_000, 200_000, 400_000]);
    expect(asked.length).toBeLessThanOrEqual(6);
    expect(result.params.rate).toBeGreaterThan(260_000 / 1.1);
    expect(result.params.rate).toBeLessThanOrEqual(260_000);
  });

  it('measures a listed held rate again when every higher rate tried fails', async () => {
    const asked: number[] = [];
    const known: MaxRateProbe[] = [
      { rate: 100_000, held: true },
      { rate: 105_000, held: false },
    ];
    const result = await searchMaxRate(known, systemHolding(100_000, asked));
    expect(asked).toEqual([100_000]);
    expect(result.params.rate).toBe(100_000);
    expect(result.maxRateProbes).toEqual([{ rate: 100_000, held: true }]);
  });

  it('reports the last run, overloaded, when no rate down to 1,000/s holds', async () => {
    const asked: number[] = [];
    const result = await searchMaxRate([], systemHolding(500, asked));
    expect(asked).toEqual([50_000, 25_000, 12_500, 6_250, 3_125, 1_562]);
    expect(result.overloaded).toBe(true);
    expect(result.maxRateProbes?.every((probe) => !probe.held)).toBe(true);
  });

  it('offers 20,000 to 500,000 events/s and the highest rate held by default', () => {
    expect(parse('publish', []).rates).toEqual([20_000, 100_000, 200_000, 500_000, 'max']);
    expect(parse('e2e', []).rates).toEqual([20_000, 100_000, 200_000, 500_000, 'max']);
    expect(parse('e2e', ['--rates', '5000,max']).rates).toEqual([5000, 'max']);
    expect(parse('e2e', ['--rates', '5000,fast']).error).toMatch(/--rates/);
  });

  it('takes fixed rates only in a comparison with the peers', () => {
    expect(parse('compare', ['--rates', '20000']).rates).toEqual([20_000]);
    expect(parse('compare', ['--rates', '20000,max']).error).toMatch(/max is not searched here/);
  });

  it('sends on timer ticks by default, and more often when asked, down to 0.01 ms', () => {
    expect(parse('publish', []).sendIntervalMs).toBe(1);
    expect(parse('e2e', ['--send-interval-ms', '0.1']).sendIntervalMs).toBe(0.1);
    expect(parse('publish', ['--send-interval-ms', '0']).error).toMatch(/--send-interval-ms.*0\.01 to 1000/);
    expect(parse('publish', ['--send-interval-ms', 'soon']).error).toMatch(/--send-interval-ms/);
  });
});
