/** `eddy bench <suite>`: runs a benchmark suite from bench/ and prints its results. */
import { Command, InvalidArgumentError, Option } from 'commander';
import type { FlushPolicy } from '../log/index.js';
import { positiveInteger as positive } from './arguments.js';

const flushPolicies: readonly FlushPolicy[] = ['never', 'interval', 'always'];

function integerList(value: string): number[] {
  return value.split(',').map(positive);
}

function policyList(value: string): FlushPolicy[] {
  return value.split(',').map((part) => {
    if (!flushPolicies.includes(part as FlushPolicy)) {
      throw new InvalidArgumentError(
        `expected flush policies among ${flushPolicies.join(', ')}, got "${part}"`,
      );
    }
    return part as FlushPolicy;
  });
}

export function benchCommand(): Command {
  const bench = new Command('bench').description('run a benchmark suite');
  bench
    .command('log')
    .description('segment log append/read throughput against a plain fs.writeSync baseline')
    .option('--json', 'print one JSON object per scenario, one per line')
    .addOption(
      new Option('--duration-ms <n>', 'timed duration of each round of a scenario')
        .argParser(positive)
        .default(1000),
    )
    .addOption(new Option('--event-bytes <list>', 'event sizes').argParser(integerList).default([100, 1024]))
    .addOption(
      new Option('--batch-events <list>', 'events per batch').argParser(integerList).default([1, 100, 1000]),
    )
    .addOption(new Option('--flush <list>', 'flush policies').argParser(policyList).default(flushPolicies))
    .addOption(new Option('--in-flight <n>', 'appends in flight at once').argParser(positive).default(64))
    .addOption(
      new Option('--max-mb <n>', 'stop a scenario after this many MB').argParser(positive).default(1024),
    )
    .addOption(
      new Option('--rounds <n>', 'rounds per scenario, alternating with the baseline; medians reported')
        .argParser(positive)
        .default(3),
    )
    .addOption(new Option('--dir <dir>', 'directory on the disk to measure (default: the OS temp dir)'))
    .action(async (options: LogBenchCliOptions) => {
      const { defaultLogBenchOptions, runLogBenchmark } = await import('../../bench/log.bench.js');
      const results = runLogBenchmark({
        durationMs: options.durationMs,
        maxBytes: options.maxMb * 1e6,
        inFlight: options.inFlight,
        eventBytes: options.eventBytes,
        batchEvents: options.batchEvents,
        flushPolicies: options.flush,
        tmpDir: options.dir ?? defaultLogBenchOptions.tmpDir,
        rounds: options.rounds,
      });
      if (!options.json) {
        process.stdout.write('scenario         event  batch  flush     events/s      MB/s  vs baseline\n');
      }
      for await (const result of results) {
        if (options.json) {
          process.stdout.write(JSON.stringify(result) + '\n');
        } else {
          const p = result.params;
          process.stdout.write(
            `${result.name.padEnd(15)} ${String(p['eventBytes']).padStart(6)} ${String(p['batchEvents']).padStart(6)}  ` +
              `${String(p['flush'] ?? '-').padEnd(8)} ${String(result.eventsPerSec).padStart(11)} ${result.mbPerSec.toFixed(1).padStart(9)}  ${result.ratioToBaseline?.toFixed(2) ?? ''}\n`,
          );
        }
      }
    });
  return bench;
}

interface LogBenchCliOptions {
  readonly json?: boolean;
  readonly durationMs: number;
  readonly eventBytes: number[];
  readonly batchEvents: number[];
  readonly flush: FlushPolicy[];
  readonly inFlight: number;
  readonly maxMb: number;
  readonly rounds: number;
  readonly dir?: string;
}
