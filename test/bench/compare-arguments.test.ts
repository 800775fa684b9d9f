import { CommanderError, type Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { compareScenarioNames, compareSystems } from '../../bench/compare.bench.js';
import {
  benchCommand,
  compareScenarioKinds,
  compareScenarioList,
  compareSystemNames,
  loopbackAddress,
  quickCompare,
  resolveCompareOptions,
  systemList,
  type CompareCliOptions,
} from '../../src/cli/bench.js';

/** Parses `eddy bench compare <args>` without running it: the options the action would get, or the error. */
function parseCompare(args: string[]): { options?: CompareCliOptions; error?: string } {
  const bench = benchCommand();
  let captured: CompareCliOptions | undefined;
  let error: string | undefined;
  for (const command of [bench, ...bench.commands]) {
    command.exitOverride().configureOutput({ writeErr: (text) => (error = text.trim()), writeOut: () => {} });
  }
  const compare = bench.commands.find((command) => command.name() === 'compare') as Command;
  compare.action((parsed: CompareCliOptions, command: Command) => {
    captured = resolveCompareOptions(parsed, (name) => command.getOptionValueSource(name) === 'cli');
  });
  try {
    bench.parse(['compare', ...args], { from: 'user' });
  } catch (thrown) {
    if (!(thrown instanceof CommanderError)) throw thrown;
  }
  return {
    ...(captured === undefined ? {} : { options: captured }),
    ...(error === undefined ? {} : { error }),
  };
}

describe('cli > bench > compare > arguments', () => {
  it('lists the same systems and scenarios as the benchmark it loads', () => {
    expect(compareSystemNames).toEqual(compareSystems);
    expect(compareScenarioKinds).toEqual(compareScenarioNames);
  });

  it('takes known systems in the order given', () => {
    expect(systemList('redis-aof,eddy')).toEqual(['redis-aof', 'eddy']);
  });

  it('rejects an unknown system and a system named twice', () => {
    expect(() => systemList('eddy,kafka')).toThrow(
      /expected systems among eddy, nats, redis, redis-aof, got "kafka"/,
    );
    expect(() => systemList('nats,nats')).toThrow(/named twice/);
    expect(() => systemList('')).toThrow(/got ""/);
  });

  it('takes one scenario or several, and rejects group-latency', () => {
    expect(compareScenarioList('e2e-latency')).toEqual(['e2e-latency']);
    expect(compareScenarioList('publish-latency,e2e-latency,publish-latency')).toEqual([
      'publish-latency',
      'e2e-latency',
    ]);
    expect(() => compareScenarioList('group-latency')).toThrow(/expected scenarios among/);
  });

  it('accepts NATS addresses on loopback only', () => {
    expect(loopbackAddress('127.0.0.1:4222')).toBe('127.0.0.1:4222');
    expect(loopbackAddress('localhost:4223')).toBe('localhost:4223');
    expect(loopbackAddress('[::1]:4222')).toBe('[::1]:4222');
    expect(() => loopbackAddress('10.0.0.5:4222')).toThrow(/loopback/);
    expect(() => loopbackAddress('nats.example.com:4222')).toThrow(/loopback/);
    expect(() => loopbackAddress('127.0.0.1')).toThrow(/loopback/);
    expect(() => loopbackAddress('127.0.0.1:70000')).toThrow(/port/);
  });

  it('runs every system and scenario at 100 B and 1 KiB, 20,000/s and 100,000/s by default', () => {
    const { options, error } = parseCompare([]);
    expect(error).toBeUndefined();
    expect(options).toMatchObject({
      peers: ['eddy', 'nats', 'redis', 'redis-aof'],
      scenario: ['publish-throughput', 'publish-latency', 'e2e-latency'],
      eventBytes: [100, 1024],
      rates: [20_000, 100_000],
      durationMs: 5000,
      eddyAck: ['leader', 'durable'],
      nats: '127.0.0.1:4222',
      redisPort: 6379,
    });
  });

  it('shortens the run with --quick, except for the options given alongside', () => {
    expect(parseCompare(['--quick']).options).toMatchObject({
      durationMs: quickCompare.durationMs,
      warmupMs: quickCompare.warmupMs,
      rates: [20_000],
      eventBytes: [100],
    });
    expect(parseCompare(['--quick', '--rates', '5000', '--duration-ms', '3000']).options).toMatchObject({
      durationMs: 3000,
      warmupMs: quickCompare.warmupMs,
      rates: [5000],
      eventBytes: [100],
    });
  });

  it('reports a bad value with one line naming the option', () => {
    expect(parseCompare(['--peers', 'eddy,rabbitmq']).error).toMatch(/--peers.*rabbitmq/);
    expect(parseCompare(['--event-bytes', '8']).error).toMatch(/at least 16 bytes/);
    expect(parseCompare(['--eddy-ack', 'none']).error).toMatch(/expected ack levels/);
    expect(parseCompare(['--nats', '192.168.1.2:4222']).error).toMatch(/loopback/);
    expect(parseCompare(['--scenario', 'max']).error).toMatch(/expected scenarios/);
  });
});
