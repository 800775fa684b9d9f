/** `eddy bench <suite>`: runs a benchmark suite from bench/ and prints its results. */
import { Command, InvalidArgumentError, Option } from 'commander';
import type {
  AckLevel,
  BrokerBenchResult,
  GroupSubscriptionType,
  OfferedRate,
  Scenario,
} from '../../bench/broker.bench.js';
import type {
  CompareProgress,
  CompareResult,
  CompareScenarioName,
  CompareSystem,
} from '../../bench/compare.bench.js';
import type { PayloadKind } from '../../bench/generator-core.js';
import type { MicroAreaName, MicroBenchResult } from '../../bench/micro.bench.js';
import type { FlushPolicy } from '../log/index.js';
import { configEntries, nonNegativeInteger, portNumber, positiveInteger as positive } from './arguments.js';

const flushPolicies: readonly FlushPolicy[] = ['never', 'interval', 'always'];

function jsonValue(value: string): unknown {
  try {
    return JSON.parse(value) as unknown;
  } catch (error) {
    throw new InvalidArgumentError(`expected JSON, got ${value}: ${(error as Error).message}`);
  }
}

function integerList(value: string): number[] {
  return value.split(',').map(positive);
}

/** `--rates`: offered events/s, and `max` (the highest rate held, searched) where the suite has it. */
function rateList(allowMax: boolean): (value: string) => OfferedRate[] {
  return (value) =>
    value.split(',').map((part) => {
      if (part !== 'max') return positive(part);
      if (!allowMax)
        throw new InvalidArgumentError('expected offered rates in events/s; max is not searched here');
      return part;
    });
}

/** Publisher processes of one scenario, at most: each is a Node process of its own. */
const PUBLISHERS_MAX = 256;
/** Distinct keys of one scenario, at most: each publisher makes every key's string once. */
const KEYS_MAX = 65_536;

/** `--publishers`: publisher counts, each run as scenarios of their own. */
export function publisherList(value: string): number[] {
  return [
    ...new Set(
      integerList(value).map((count) => {
        if (count > PUBLISHERS_MAX)
          throw new InvalidArgumentError(`expected at most ${PUBLISHERS_MAX} publishers, got ${count}`);
        return count;
      }),
    ),
  ];
}

/** `--keys`: distinct key counts, 0 for unkeyed publishes, each run as scenarios of their own. */
export function keyCountList(value: string): number[] {
  return [
    ...new Set(
      value.split(',').map((part) => {
        const count = nonNegativeInteger(part);
        if (count > KEYS_MAX)
          throw new InvalidArgumentError(`expected at most ${KEYS_MAX} keys, got ${count}`);
        return count;
      }),
    ),
  ];
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

/**
 * `none` is left out: its publishes resolve once written to the socket, so a closed loop would
 * queue without bound in the socket's buffer instead of waiting for the broker.
 */
const ackLevels: readonly AckLevel[] = ['leader', 'durable'];
/** The load generator writes a send time (8 bytes) and a flag into each event's data. */
const EVENT_BYTES_MIN = 16;

function ackList(value: string): AckLevel[] {
  return value.split(',').map((part) => {
    if (!ackLevels.includes(part as AckLevel)) {
      throw new InvalidArgumentError(`expected ack levels among ${ackLevels.join(', ')}, got "${part}"`);
    }
    return part as AckLevel;
  });
}

function eventBytesList(value: string): number[] {
  return integerList(value).map((bytes) => {
    if (bytes < EVENT_BYTES_MIN) {
      throw new InvalidArgumentError(
        `expected event sizes of at least ${EVENT_BYTES_MIN} bytes, got ${bytes}`,
      );
    }
    return bytes;
  });
}

/** As `groupSubscriptionTypes` in bench/broker.bench.ts, which is loaded only when a broker bench runs. */
const groupTypes: readonly GroupSubscriptionType[] = ['queue', 'stream'];

function groupTypeList(value: string): GroupSubscriptionType[] {
  return value.split(',').map((part) => {
    if (!groupTypes.includes(part as GroupSubscriptionType)) {
      throw new InvalidArgumentError(
        `expected subscription types among ${groupTypes.join(', ')}, got "${part}"`,
      );
    }
    return part as GroupSubscriptionType;
  });
}

const scenarioKinds = ['throughput', 'latency'] as const;
type ScenarioKind = (typeof scenarioKinds)[number];

/** One `name=value` of `--topic-config` added to those before it. */
function collectConfigEntry(entry: string, previous: Record<string, string>): Record<string, string> {
  return { ...previous, ...configEntries([entry]) };
}

/** Milliseconds from 0.01 to 1,000, fractions allowed: below 1 the generator busy-waits. */
function sendInterval(value: string): number {
  const number = Number(value);
  if (value.trim() === '' || !Number.isFinite(number) || number < 0.01 || number > 1000)
    throw new InvalidArgumentError(`expected milliseconds from 0.01 to 1000, got "${value}"`);
  return number;
}

function scenarioList(value: string): ScenarioKind[] {
  return value.split(',').map((part) => {
    if (!scenarioKinds.includes(part as ScenarioKind)) {
      throw new InvalidArgumentError(`expected scenarios among ${scenarioKinds.join(', ')}, got "${part}"`);
    }
    return part as ScenarioKind;
  });
}

/** The options `eddy bench publish`, `e2e` and `group` share: the broker, the generators, the SDK. */
function addBrokerBenchOptions(
  command: Command,
  defaults: { readonly rates: OfferedRate[]; readonly partitions: number; readonly maxRate: boolean } = {
    rates: [20_000, 100_000, 200_000, 500_000, 'max'],
    partitions: 1,
    maxRate: true,
  },
): Command {
  return command
    .option('--json', 'print one JSON object per scenario, one per line')
    .addOption(
      new Option('--duration-ms <n>', 'measured duration of each scenario, after the warm-up')
        .argParser(positive)
        .default(5000),
    )
    .addOption(
      new Option('--warmup-ms <n>', 'warm-up before measuring (excluded from counts and histograms)')
        .argParser(nonNegativeInteger)
        .default(1000),
    )
    .addOption(
      new Option(
        '--rates <list>',
        'offered events/s (all publishers together) of the latency scenarios' +
          (defaults.maxRate ? '; max: the highest rate held, searched' : ''),
      )
        .argParser(rateList(defaults.maxRate))
        .default(defaults.rates),
    )
    .addOption(
      new Option(
        '--publishers <list>',
        'publisher processes, each with its own connection (several counts: each runs every scenario)',
      )
        .argParser(publisherList)
        .default([1]),
    )
    .addOption(
      new Option(
        '--keys <list>',
        'distinct keys the events cycle through, 0 for unkeyed (several counts: each runs every scenario)',
      )
        .argParser(keyCountList)
        .default([0]),
    )
    .addOption(
      new Option(
        '--in-flight <n>',
        'publishes outstanding per publisher, in events (throughput; the latency scenarios allow 1 s of events at least)',
      )
        .argParser(positive)
        .default(4096),
    )
    .addOption(
      new Option(
        '--linger-ms <n>',
        'SDK batching: how long a batch waits for more events (0: until the publishing code yields)',
      )
        .argParser(nonNegativeInteger)
        .default(0),
    )
    .addOption(
      new Option('--max-batch-bytes <n>', 'SDK batching: a batch is sent once it reaches this size')
        .argParser(positive)
        .default(256 * 1024),
    )
    .addOption(
      new Option(
        '--compression-threshold-bytes <n>',
        'SDK: LZ4-compress event blocks from this size on when that saves bytes (0: never)',
      )
        .argParser(nonNegativeInteger)
        .default(16 * 1024),
    )
    .addOption(
      new Option('--data <kind>', "the events' data: random bytes, or JSON order records (compressible)")
        .choices(payloadKindNames)
        .default('random'),
    )
    .addOption(
      new Option(
        '--send-interval-ms <n>',
        'latency scenarios: how often a publisher sends the events that are due; from 1 on timer ticks, ' +
          'below 1 busy-waiting between sends (a full core per publisher)',
      )
        .argParser(sendInterval)
        .default(1),
    )
    .addOption(
      new Option(
        '--topic-config <entries...>',
        "settings of the topic measured, name=value with the broker's names (e.g. flush.ms=50)",
      )
        .argParser(collectConfigEntry)
        .default({}),
    )
    .addOption(
      new Option('--partitions <n>', 'partitions of the topic')
        .argParser(positive)
        .default(defaults.partitions),
    )
    .addOption(
      new Option('--workers <n>', "the broker's partition worker threads (0: partitions on its main thread)")
        .argParser(nonNegativeInteger)
        .default(0),
    )
    .addOption(new Option('--dir <dir>', "where the broker's temp data dir goes (default: the OS temp dir)"))
    .addOption(
      new Option('--profile-dir <dir>', 'write a V8 CPU profile of every process (broker, generators) here'),
    );
}

/** As `payloadKinds` in bench/generator-core.ts, loaded only when a benchmark runs. */
const payloadKindNames: readonly PayloadKind[] = ['random', 'json'];

/** As `compareSystems` and `compareScenarioNames` in bench/compare.bench.ts, loaded only when it runs. */
export const compareSystemNames: readonly CompareSystem[] = ['eddy', 'nats', 'redis', 'redis-aof'];
export const compareScenarioKinds: readonly CompareScenarioName[] = [
  'publish-throughput',
  'publish-latency',
  'e2e-latency',
];

/** `--peers`: known systems, each named once. */
export function systemList(value: string): CompareSystem[] {
  const names = value.split(',');
  for (const name of names) {
    if (!compareSystemNames.includes(name as CompareSystem))
      throw new InvalidArgumentError(
        `expected systems among ${compareSystemNames.join(', ')}, got "${name}"`,
      );
  }
  if (new Set(names).size !== names.length)
    throw new InvalidArgumentError(`a system is named twice in "${value}"`);
  return names as CompareSystem[];
}

/** `--scenario`: one scenario of the comparison, or several separated by commas. */
export function compareScenarioList(value: string): CompareScenarioName[] {
  const names = value.split(',');
  for (const name of names) {
    if (!compareScenarioKinds.includes(name as CompareScenarioName))
      throw new InvalidArgumentError(
        `expected scenarios among ${compareScenarioKinds.join(', ')}, got "${name}"`,
      );
  }
  return [...new Set(names)] as CompareScenarioName[];
}

/** `--nats <host:port>`: a server on this machine's loopback (the benchmark sends nothing elsewhere). */
export function loopbackAddress(value: string): string {
  const match = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\]):(\d{1,5})$/.exec(value);
  if (match === null)
    throw new InvalidArgumentError(`expected a loopback host:port such as 127.0.0.1:4222, got "${value}"`);
  portNumber(match[2] as string);
  return value;
}

/** What `--quick` sets, unless the same option is given: about a minute for every system. */
export const quickCompare = {
  durationMs: 2000,
  warmupMs: 500,
  rates: [20_000],
  eventBytes: [100],
} as const;

export interface CompareCliOptions extends BrokerBenchCliOptions {
  /** Fixed rates only: its parser refuses `max`. */
  readonly rates: number[];
  readonly quick?: boolean;
  readonly scenario: CompareScenarioName[];
  readonly eventBytes: number[];
  readonly peers: CompareSystem[];
  readonly eddyAck: AckLevel[];
  readonly consumerBatch: number;
  readonly nats: string;
  readonly redisPort: number;
}

/** The options with `--quick`'s values in place of every default it overrides (`given`: options on the command line). */
export function resolveCompareOptions(
  options: CompareCliOptions,
  given: (name: keyof typeof quickCompare) => boolean,
): CompareCliOptions {
  if (options.quick !== true) return options;
  const pick = <K extends keyof typeof quickCompare>(name: K): Partial<CompareCliOptions> =>
    given(name)
      ? {}
      : {
          [name]: Array.isArray(quickCompare[name])
            ? [...(quickCompare[name] as readonly number[])]
            : quickCompare[name],
        };
  return { ...options, ...pick('durationMs'), ...pick('warmupMs'), ...pick('rates'), ...pick('eventBytes') };
}

/** As `microAreaNames` in bench/micro/case.ts, loaded only when the micro-benchmarks run. */
export const microAreaKinds: readonly MicroAreaName[] = [
  'frame',
  'verify',
  'crc32c',
  'log',
  'ring',
  'cesql',
  'wasm',
];

/** `eddy bench micro --scenario`: one area or several, separated by commas. */
export function microAreaList(value: string): MicroAreaName[] {
  const names = value.split(',');
  for (const name of names) {
    if (!microAreaKinds.includes(name as MicroAreaName))
      throw new InvalidArgumentError(`expected scenarios among ${microAreaKinds.join(', ')}, got "${name}"`);
  }
  return [...new Set(names)] as MicroAreaName[];
}

/** What `eddy bench micro --quick` sets unless given: about 15 s for every case. */
export const quickMicro = { warmupMs: 100, durationMs: 200, minSamples: 3, sampleMs: 20 } as const;

export interface MicroCliOptions {
  readonly json?: boolean;
  readonly quick?: boolean;
  readonly scenario: MicroAreaName[];
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly minSamples: number;
  readonly dir?: string;
}

/** The options with `--quick`'s values in place of the defaults it overrides (`given`: on the command line). */
export function resolveMicroOptions(
  options: MicroCliOptions,
  given: (name: 'warmupMs' | 'durationMs' | 'minSamples') => boolean,
): MicroCliOptions & { readonly sampleMs?: number } {
  if (options.quick !== true) return options;
  return {
    ...options,
    ...(given('warmupMs') ? {} : { warmupMs: quickMicro.warmupMs }),
    ...(given('durationMs') ? {} : { durationMs: quickMicro.durationMs }),
    ...(given('minSamples') ? {} : { minSamples: quickMicro.minSamples }),
    sampleMs: quickMicro.sampleMs,
  };
}

function microRow(result: MicroBenchResult): string {
  const { op, ...rest } = result.params;
  const what = Object.entries(rest)
    .map(([key, value]) => `${key}=${value}`)
    .join(' ');
  return (
    `${result.name.padEnd(22)} ${result.opsPerSec.toLocaleString('en-US').padStart(14)} ${`${op ?? 'op'}s/s`.padEnd(11)}` +
    ` ±${result.margin.toFixed(2).padStart(5)}%  ${what}\n`
  );
}

async function runMicroBench(options: MicroCliOptions & { readonly sampleMs?: number }): Promise<void> {
  const { defaultMicroBenchOptions, runMicroBenchmark } = await import('../../bench/micro.bench.js');
  const results = runMicroBenchmark(
    {
      areas: options.scenario,
      warmupMs: options.warmupMs,
      durationMs: options.durationMs,
      minSamples: options.minSamples,
      sampleMs: options.sampleMs ?? defaultMicroBenchOptions.sampleMs,
      tmpDir: options.dir ?? defaultMicroBenchOptions.tmpDir,
    },
    (area, cases) => process.stderr.write(`eddy bench micro: ${area} (${cases} cases)\n`),
  );
  if (!options.json)
    process.stdout.write('scenario                         rate              margin  params\n');
  for await (const result of results) {
    process.stdout.write(options.json ? JSON.stringify(result) + '\n' : microRow(result));
  }
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
  bench
    .command('micro')
    .description(
      'micro-benchmarks with benny, in operations/s: frame encode/decode, FlatBuffers verification, ' +
        'CRC32C, log append/read, ring push/pop between threads, CESQL and WASM filter evaluation',
    )
    .option('--json', 'print one JSON object per case, one per line')
    .option(
      '--quick',
      `a smoke run of about 15 s (${quickMicro.warmupMs} ms of warm-up and ${quickMicro.durationMs} ms of samples per case)`,
    )
    .addOption(
      new Option('--scenario <names>', `areas among ${microAreaKinds.join(', ')}`)
        .argParser(microAreaList)
        .default([...microAreaKinds]),
    )
    .addOption(
      new Option('--warmup-ms <n>', 'how long each case runs before benny samples it')
        .argParser(nonNegativeInteger)
        .default(200),
    )
    .addOption(
      new Option('--duration-ms <n>', 'how long benny samples each case, after calibrating its loop')
        .argParser(positive)
        .default(1000),
    )
    .addOption(
      new Option('--min-samples <n>', 'samples each case takes at least').argParser(positive).default(5),
    )
    .addOption(new Option('--dir <dir>', "where the log's temp dir goes (default: the OS temp dir)"))
    .action(async (parsed: MicroCliOptions, command: Command) => {
      await runMicroBench(
        resolveMicroOptions(parsed, (name) => command.getOptionValueSource(name) === 'cli'),
      );
    });
  bench
    .command('filter')
    .description(
      'CESQL and Subscriptions API filter evaluations per second on one core, and WASM filters on stored batches',
    )
    .option('--json', 'print one JSON object per scenario, one per line')
    .addOption(
      new Option('--duration-ms <n>', 'timed duration of each round').argParser(positive).default(1000),
    )
    .addOption(
      new Option('--rounds <n>', 'rounds per scenario; the median is reported')
        .argParser(positive)
        .default(3),
    )
    .action(async (options: { json?: boolean; durationMs: number; rounds: number }) => {
      const { defaultFilterBenchOptions, runFilterBenchmark } = await import('../../bench/filter.bench.js');
      const { defaultWasmFilterBenchOptions, runWasmFilterBenchmark } =
        await import('../../bench/wasm-filter.bench.js');
      const timing = { durationMs: options.durationMs, rounds: options.rounds };
      const print = (
        name: string,
        perSec: number,
        unit: string,
        matchRatio: number,
        params: object,
      ): void => {
        const what = Object.values(params).join(' ');
        process.stdout.write(
          `${name.padEnd(22)} ${String(perSec).padStart(12)} ${unit}  ${(matchRatio * 100).toFixed(0).padStart(4)}%  ${what.length > 56 ? what.slice(0, 53) + '...' : what}\n`,
        );
      };
      if (!options.json)
        process.stdout.write('scenario                         rate        matched  filter\n');
      for await (const result of runFilterBenchmark({ ...defaultFilterBenchOptions, ...timing })) {
        if (options.json) process.stdout.write(JSON.stringify(result) + '\n');
        else print(result.name, result.evalsPerSec, 'evals/s ', result.matchRatio, result.params);
      }
      for await (const result of runWasmFilterBenchmark({ ...defaultWasmFilterBenchOptions, ...timing })) {
        if (options.json) process.stdout.write(JSON.stringify(result) + '\n');
        else print(result.name, result.eventsPerSec, 'events/s', result.matchRatio, result.params);
      }
    });
  addBrokerBenchOptions(
    bench
      .command('publish')
      .description(
        'broker publish throughput (closed loop) and publish-ack latency at fixed offered rates, ' +
          'load generators in their own processes',
      ),
  )
    .addOption(
      new Option('--scenarios <list>', 'which scenarios').argParser(scenarioList).default(scenarioKinds),
    )
    .addOption(
      new Option('--event-bytes <list>', 'throughput: event data sizes')
        .argParser(eventBytesList)
        .default([100, 1024]),
    )
    .addOption(
      new Option('--ack <list>', 'throughput: ack levels').argParser(ackList).default(['leader', 'durable']),
    )
    .addOption(
      new Option('--latency-event-bytes <list>', 'latency: event data sizes')
        .argParser(eventBytesList)
        .default([100]),
    )
    .addOption(
      new Option('--latency-ack <list>', 'latency: ack levels').argParser(ackList).default(['leader']),
    )
    .action(async (options: PublishBenchCliOptions) => {
      const { publishScenarios } = await import('../../bench/broker.bench.js');
      const scenarios = publishScenarios(
        options.scenarios.includes('throughput')
          ? { eventBytes: options.eventBytes, acks: options.ack }
          : null,
        options.scenarios.includes('latency')
          ? { eventBytes: options.latencyEventBytes, acks: options.latencyAck, rates: options.rates }
          : null,
      );
      await runBrokerBench(scenarios, options);
    });
  addBrokerBenchOptions(
    bench
      .command('e2e')
      .description(
        'publish-to-consume latency at fixed offered rates: publishers and a consumer in their own processes',
      ),
  )
    .addOption(
      new Option('--event-bytes <list>', 'event data sizes').argParser(eventBytesList).default([100]),
    )
    .addOption(
      new Option('--ack <list>', 'ack levels of the publishers').argParser(ackList).default(['leader']),
    )
    .addOption(
      new Option('--credits <n>', 'stored batches the broker may send the consumer ahead of its handler')
        .argParser(positive)
        .default(64),
    )
    .addOption(
      new Option(
        '--consumer-filter <json>',
        'the consumer\'s subscription filter, e.g. \'{"sql":"type = \\\'bench.event\\\'"}\' or \'{"wasm":"keep-all"}\' (a built example filter, uploaded first)',
      ).argParser(jsonValue),
    )
    .action(async (options: E2eBenchCliOptions) => {
      const { e2eScenarios } = await import('../../bench/broker.bench.js');
      await runBrokerBench(e2eScenarios(options.eventBytes, options.ack, options.rates), options);
    });
  addBrokerBenchOptions(
    bench
      .command('group')
      .description(
        'publish-to-consume latency through a durable subscription at fixed offered rates: a queue ' +
          '(per-event acks) and a stream group (commits), each member a consumer process of its own',
      ),
    { rates: [5_000, 20_000], partitions: 8, maxRate: true },
  )
    .addOption(
      new Option('--subscription-type <list>', 'durable subscription types: queue, stream')
        .argParser(groupTypeList)
        .default(groupTypes),
    )
    .addOption(
      new Option('--consumers <n>', 'consumer processes, each joining the subscription as a member')
        .argParser(positive)
        .default(4),
    )
    .addOption(
      new Option('--event-bytes <list>', 'event data sizes').argParser(eventBytesList).default([100]),
    )
    .addOption(
      new Option('--ack <list>', 'ack levels of the publishers').argParser(ackList).default(['leader']),
    )
    .addOption(
      new Option('--credits <n>', 'stored batches the broker may send each member ahead of its handler')
        .argParser(positive)
        .default(64),
    )
    .action(async (options: GroupBenchCliOptions) => {
      const { groupScenarios } = await import('../../bench/broker.bench.js');
      await runBrokerBench(
        groupScenarios(options.subscriptionType, options.eventBytes, options.ack, options.rates),
        options,
      );
    });
  addBrokerBenchOptions(
    bench
      .command('compare')
      .description(
        'Eddy against NATS JetStream and Redis Streams in one run: the same scenarios, load generator ' +
          "and payloads against each system in turn, with Eddy's ratio to each peer",
      ),
    { rates: [20_000, 100_000], partitions: 1, maxRate: false },
  )
    .option(
      '--quick',
      `a smoke run of about a minute (${quickCompare.durationMs} ms per scenario, 100-byte events, 20,000/s)`,
    )
    .addOption(
      new Option('--scenario <names>', `scenarios among ${compareScenarioKinds.join(', ')}`)
        .argParser(compareScenarioList)
        .default([...compareScenarioKinds]),
    )
    .addOption(
      new Option('--event-bytes <list>', 'event data sizes').argParser(eventBytesList).default([100, 1024]),
    )
    .addOption(
      new Option('--peers <list>', `systems measured, in this order: ${compareSystemNames.join(', ')}`)
        .argParser(systemList)
        .default([...compareSystemNames]),
    )
    .addOption(
      new Option(
        '--eddy-ack <list>',
        "Eddy's ack levels, each scenario once per level: leader (comparable to the peers' acks), durable (fsync before the ack)",
      )
        .argParser(ackList)
        .default(['leader', 'durable']),
    )
    .addOption(
      new Option(
        '--consumer-batch <n>',
        "peers' consumers: messages per pull (NATS) or entries per read (Redis)",
      )
        .argParser(positive)
        .default(1024),
    )
    .addOption(
      new Option('--nats <host:port>', 'NATS with JetStream (loopback only)')
        .argParser(loopbackAddress)
        .default('127.0.0.1:4222'),
    )
    .addOption(
      new Option('--redis-port <port>', "the machine's Redis on 127.0.0.1 (redis-aof starts its own)")
        .argParser(portNumber)
        .default(6379),
    )
    .action(async (parsed: CompareCliOptions, command: Command) => {
      const options = resolveCompareOptions(parsed, (name) => command.getOptionValueSource(name) === 'cli');
      await runCompareBench(options);
    });
  return bench;
}

/** Prints a progress line on stderr when a scenario starts and every few seconds while it runs. */
function progressLines(startedMs: number): CompareProgress {
  const PROGRESS_INTERVAL_MS = 5000;
  const clock = (ms: number): string =>
    `${Math.floor(ms / 60_000)}:${String(Math.floor((ms % 60_000) / 1000)).padStart(2, '0')}`;
  return {
    scenario(step, steps, system, scenario) {
      const what =
        `${system} ${scenario.name} ${scenario.eventBytes} B` +
        (scenario.rate === undefined ? '' : ` at ${scenario.rate.toLocaleString('en-US')}/s`) +
        (scenario.publishers === undefined || scenario.publishers === 1
          ? ''
          : `, ${scenario.publishers} publishers`) +
        (scenario.keys === undefined ? '' : `, ${scenario.keys} keys`);
      const scenarioStartMs = performance.now();
      process.stderr.write(
        `eddy bench compare [${step}/${steps}, ${clock(scenarioStartMs - startedMs)}] ${what}\n`,
      );
      let last: { acked: number; atEpochMs: number } | null = null;
      let lastPrintedMs = scenarioStartMs;
      return (acked, atEpochMs) => {
        const now = performance.now();
        if (last !== null && now - lastPrintedMs >= PROGRESS_INTERVAL_MS && atEpochMs > last.atEpochMs) {
          const rate = Math.round(((acked - last.acked) * 1000) / (atEpochMs - last.atEpochMs));
          process.stderr.write(
            `eddy bench compare [${step}/${steps}, ${clock(now - startedMs)}] ${what}: ` +
              `${clock(now - scenarioStartMs)} in, ${rate.toLocaleString('en-US')} events/s acked\n`,
          );
          lastPrintedMs = now;
        }
        last = { acked, atEpochMs };
      };
    },
  };
}

async function runCompareBench(options: CompareCliOptions): Promise<void> {
  const { compareScenarios, describeSystems, runComparison } = await import('../../bench/compare.bench.js');
  const { defaultBrokerBenchOptions } = await import('../../bench/broker.bench.js');
  const compareOptions = {
    systems: options.peers,
    eddyAcks: options.eddyAck,
    bench: { ...defaultBrokerBenchOptions, ...loadOptions(options, defaultBrokerBenchOptions.tmpDir) },
    peers: { natsServers: options.nats, redisPort: options.redisPort, consumerBatch: options.consumerBatch },
  };
  const scenarios = compareScenarios(
    options.scenario,
    options.eventBytes,
    options.rates,
    options.eddyAck[0] ?? 'leader',
    {
      publishers: options.publishers,
      keys: options.keys,
    },
  );
  // Every peer checked before anything runs: a missing server fails the run at once.
  const info = await describeSystems(compareOptions);
  if (options.json) process.stdout.write(JSON.stringify(info) + '\n');
  else {
    for (const [system, description] of Object.entries(info.systems))
      process.stdout.write(`${system.padEnd(9)} ${description.server}: ${description.durability}\n`);
    process.stdout.write(
      'system     scenario            bytes    rate     events/s     MB/s      p50      p99     p999  (ms)  Eddy ÷ peer\n',
    );
  }
  for await (const result of runComparison(
    scenarios,
    compareOptions,
    info,
    progressLines(performance.now()),
  )) {
    process.stdout.write(options.json ? JSON.stringify(result) + '\n' : compareRow(result));
    const problems = [
      result.failed === undefined ? '' : `failed: ${result.failed}`,
      ...incomparable(result),
    ].filter(Boolean);
    if (problems.length > 0) {
      process.stderr.write(
        `eddy: ${systemLabel(result)} ${result.name} ${JSON.stringify(result.params)}: ${problems.join('; ')}\n`,
      );
      process.exitCode = 1;
    }
  }
}

/**
 * Why a result's figures are not comparable ('' for each thing that went right): failed
 * publishes, or acked events the consumer never got. A run past the rate the system holds
 * (`overloaded`) is a result, not a failure: its unsent events, and acked events still queued
 * when the wait for them ran out, are how it shows.
 */
function incomparable(result: {
  readonly errors?: number;
  readonly firstError?: string;
  readonly lost?: number;
  readonly overloaded?: true;
}): string[] {
  return [
    result.errors === undefined
      ? ''
      : `${result.errors} publishes failed (first: ${result.firstError ?? '?'})`,
    result.lost === undefined || result.lost === 0 || result.overloaded === true
      ? ''
      : `${result.lost} acked events not consumed`,
  ];
}

/** The load the command line asks for, as every broker benchmark (publish, e2e, group, compare) takes it. */
function loadOptions(options: BrokerBenchCliOptions, defaultTmpDir: string) {
  return {
    durationMs: options.durationMs,
    warmupMs: options.warmupMs,
    publishers: options.publishers[0] ?? 1,
    inFlight: options.inFlight,
    lingerMs: options.lingerMs,
    maxBatchBytes: options.maxBatchBytes,
    compressionThresholdBytes: options.compressionThresholdBytes,
    data: options.data,
    sendIntervalMs: options.sendIntervalMs,
    partitions: options.partitions,
    topicConfig: options.topicConfig,
    workers: options.workers,
    tmpDir: options.dir ?? defaultTmpDir,
    profileDir: options.profileDir ?? null,
  };
}

/** A result's system, Eddy's with its ack level (`eddy/durable`): a run may measure it at several. */
function systemLabel(result: CompareResult): string {
  const ack = (result.params as { readonly ack?: string }).ack;
  return result.peer === 'eddy' && ack !== undefined ? `eddy/${ack}` : result.peer;
}

function compareRow(result: CompareResult): string {
  const p = result.params;
  const latency = result.latencyMs;
  const ms = (value: number | undefined): string => (value === undefined ? '' : value.toFixed(3)).padStart(8);
  const versus = Object.entries(result.ratioTo ?? {})
    .map(
      ([peer, r]) =>
        `${peer} ${r.eventsPerSec?.toFixed(2) ?? '-'}×` +
        (r.latencyMs === undefined ? '' : ` p99 ${r.latencyMs.p99?.toFixed(2) ?? '-'}×`),
    )
    .join(', ');
  const load =
    (p.publishers === 1 ? '' : ` publishers=${p.publishers}`) +
    (p.keys === undefined ? '' : ` keys=${p.keys}`) +
    (result.brokerPeakRssMb === undefined ? '' : ` rss=${result.brokerPeakRssMb}MB`);
  return (
    `${systemLabel(result).padEnd(10)} ${result.name.padEnd(19)} ${String(p.eventBytes).padStart(5)} ${String(p.rate ?? 'max').padStart(7)} ` +
    `${String(result.eventsPerSec).padStart(12)} ${result.mbPerSec.toFixed(1).padStart(8)} ` +
    `${ms(latency?.p50)} ${ms(latency?.p99)} ${ms(latency?.p999)}  ${result.failed === undefined ? versus : `failed: ${result.failed}`}${load}\n`
  );
}

async function runBrokerBench(
  scenarios: readonly Scenario[],
  options: BrokerBenchCliOptions & {
    readonly credits?: number;
    readonly consumers?: number;
    readonly consumerFilter?: unknown;
  },
): Promise<void> {
  const { defaultBrokerBenchOptions, runBrokerBenchmark, withLoads } =
    await import('../../bench/broker.bench.js');
  const results = runBrokerBenchmark(
    withLoads(scenarios, options.publishers, options.keys),
    {
      ...loadOptions(options, defaultBrokerBenchOptions.tmpDir),
      credits: options.credits ?? defaultBrokerBenchOptions.credits,
      consumers: options.consumers ?? defaultBrokerBenchOptions.consumers,
      consumerFilter: options.consumerFilter ?? null,
    },
    (scenario, result) =>
      process.stderr.write(
        `eddy bench: searching the highest rate held, ${scenario.name} ${scenario.eventBytes} B ${scenario.ack}: ` +
          `${(scenario.rate ?? 0).toLocaleString('en-US')}/s ${result.overloaded === true ? 'not held' : 'held'} ` +
          `(${result.eventsPerSec.toLocaleString('en-US')} events/s, p99 ${result.latencyMs?.p99 ?? '?'} ms)\n`,
      ),
  );
  if (!options.json) {
    process.stdout.write(
      'scenario             bytes  ack       rate     events/s     MB/s      p50      p99     p999      max  (ms)\n',
    );
  }
  for await (const result of results) {
    process.stdout.write(options.json ? JSON.stringify(result) + '\n' : brokerRow(result));
    // Figures from a run that lost or failed publishes are not comparable: say so, and exit ≠ 0 at the end.
    const problems = incomparable(result).filter(Boolean);
    if (problems.length > 0) {
      process.stderr.write(`eddy: ${result.name} ${JSON.stringify(result.params)}: ${problems.join('; ')}\n`);
      process.exitCode = 1;
    }
  }
}

function brokerRow(result: BrokerBenchResult): string {
  const p = result.params;
  const latency = result.latencyMs;
  const ms = (value: number | undefined): string => (value === undefined ? '' : value.toFixed(3)).padStart(8);
  const notes = [
    result.errors === undefined ? '' : ` errors=${result.errors} (${result.firstError ?? ''})`,
    result.unsent === undefined ? '' : ` unsent=${result.unsent}`,
    result.lost === undefined || result.lost === 0 ? '' : ` lost=${result.lost}`,
    result.overloaded === true ? ' overloaded' : '',
    result.maxRateProbes === undefined
      ? ''
      : ` max of ${result.maxRateProbes.map((probe) => `${probe.rate}${probe.held ? '✓' : '✗'}`).join(' ')}`,
    p.subscriptionType === undefined ? '' : ` ${p.subscriptionType}×${p.consumers ?? '?'}`,
    result.duplicates === undefined ? '' : ` duplicates=${result.duplicates}`,
    p.publishers === 1 ? '' : ` publishers=${p.publishers}`,
    p.keys === undefined ? '' : ` keys=${p.keys}`,
    result.brokerPeakRssMb === undefined ? '' : ` rss=${result.brokerPeakRssMb}MB`,
  ].join('');
  return (
    `${result.name.padEnd(19)} ${String(p.eventBytes).padStart(6)}  ${p.ack.padEnd(8)} ${String(p.rate ?? 'max').padStart(7)} ` +
    `${String(result.eventsPerSec).padStart(12)} ${result.mbPerSec.toFixed(1).padStart(8)} ` +
    `${ms(latency?.p50)} ${ms(latency?.p99)} ${ms(latency?.p999)} ${ms(latency?.max)}${notes}\n`
  );
}

interface BrokerBenchCliOptions {
  readonly json?: boolean;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly rates: OfferedRate[];
  readonly publishers: number[];
  readonly keys: number[];
  readonly inFlight: number;
  readonly lingerMs: number;
  readonly maxBatchBytes: number;
  readonly compressionThresholdBytes: number;
  readonly data: PayloadKind;
  readonly sendIntervalMs: number;
  readonly partitions: number;
  readonly topicConfig: Record<string, string>;
  readonly workers: number;
  readonly dir?: string;
  readonly profileDir?: string;
}

interface PublishBenchCliOptions extends BrokerBenchCliOptions {
  readonly scenarios: ScenarioKind[];
  readonly eventBytes: number[];
  readonly ack: AckLevel[];
  readonly latencyEventBytes: number[];
  readonly latencyAck: AckLevel[];
}

interface E2eBenchCliOptions extends BrokerBenchCliOptions {
  readonly eventBytes: number[];
  readonly ack: AckLevel[];
  readonly credits: number;
  readonly consumerFilter?: unknown;
}

interface GroupBenchCliOptions extends BrokerBenchCliOptions {
  readonly subscriptionType: GroupSubscriptionType[];
  readonly consumers: number;
  readonly eventBytes: number[];
  readonly ack: AckLevel[];
  readonly credits: number;
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
