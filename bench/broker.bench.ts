/**
 * Broker benchmark (`eddy bench publish`, `eddy bench e2e`, `eddy bench group`): a real broker
 * node (`eddy serve` in a child process, fresh temp data dir per scenario) and
 * load generators in their own child processes (`load-generator.ts`, the real
 * client SDK), so the broker's event loop carries only the broker.
 *
 * Scenarios:
 * - `publish-throughput`: closed loop, each publisher keeps `inFlight`
 *   publishes outstanding through the SDK's batching; events acked per second.
 * - `publish-latency`: open loop at a fixed offered rate; publish-ack latency
 *   from each event's intended send time (coordinated omission corrected).
 * - `e2e-latency`: the same open loop plus a consumer process subscribed from
 *   `latest` before publishing starts; publish-to-consume latency from the
 *   intended send time carried in the event, against the same wall clock
 *   (`performance.timeOrigin + performance.now()` in both processes).
 * - `group-latency`: the same open loop, consumed by `consumers` processes, each
 *   a member (`client.join`) of one durable subscription created before
 *   publishing starts: a `queue` (each event acked after the handler) or a
 *   `stream` group (partitions shared out, positions committed after each batch).
 *   Latency is merged across members; every event the broker acked is checked
 *   off against what the members received (`lost`), and deliveries beyond an
 *   event's first are counted (`duplicates`, which at-least-once allows).
 *
 * Each scenario warms up for `warmupMs` (excluded from counts and histograms),
 * then measures for `durationMs`. Every child process is stopped and every
 * temp dir removed when the scenario ends, fails, or the benchmark is
 * interrupted; children also stop by themselves if this process dies.
 */
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeFromCompressedBase64, type Histogram } from 'hdr-histogram-js';
import { epochNow, type LoadPublisherSpec, type PayloadKind } from './generator-core.js';
import type {
  AckedEvents,
  AckLevel,
  ConsumerResult,
  FromGenerator,
  GeneratorSpec,
  PublisherResult,
  ToGenerator,
} from './load-generator.js';

export type { AckLevel } from './load-generator.js';

export type ScenarioName = 'publish-throughput' | 'publish-latency' | 'e2e-latency' | 'group-latency';

/** The durable subscription types `group-latency` measures. */
export const groupSubscriptionTypes = ['queue', 'stream'] as const;
export type GroupSubscriptionType = (typeof groupSubscriptionTypes)[number];

/** An offered rate of a latency scenario: events/s, or `max`, the highest rate the broker holds (searched). */
export type OfferedRate = number | 'max';

export interface Scenario {
  readonly name: ScenarioName;
  readonly eventBytes: number;
  readonly ack: AckLevel;
  /** Offered events/s (all publishers together) for the latency scenarios. */
  readonly rate?: number;
  /**
   * A latency scenario without a rate of its own: `runBrokerBenchmark` searches the highest rate
   * it holds (see `searchMaxRate`) and reports that run.
   */
  readonly findMaxRate?: true;
  /** `group-latency`: the durable subscription's type. */
  readonly subscriptionType?: GroupSubscriptionType;
  /** Publisher processes of this scenario; default `BrokerBenchOptions.publishers`. */
  readonly publishers?: number;
  /** Distinct keys the events cycle through; absent or 0: unkeyed publishes. */
  readonly keys?: number;
}

export interface BrokerBenchOptions {
  /** Measured time of each scenario, after the warm-up. */
  readonly durationMs: number;
  /** Time before measuring starts: connections, JIT, the broker's first segment. */
  readonly warmupMs: number;
  /** Publisher processes. */
  readonly publishers: number;
  /** Closed loop: publishes outstanding per publisher (events). */
  readonly inFlight: number;
  /** SDK batching (`connect` options) in the publishers. */
  readonly lingerMs: number;
  readonly maxBatchBytes: number;
  /** SDK: event blocks from this size on are LZ4-compressed when that saves bytes; 0 never. */
  readonly compressionThresholdBytes: number;
  /** What the events' data is made of: random bytes, or JSON text that compresses. */
  readonly data: PayloadKind;
  /** Open loop: how often a publisher sends what is due; below 1 ms it busy-waits (LoadPublisherSpec). */
  readonly sendIntervalMs: number;
  readonly partitions: number;
  /** Settings of the topic measured (wire names, e.g. `flush.ms`); empty: the broker's defaults. */
  readonly topicConfig: Readonly<Record<string, string>>;
  /** The broker's partition worker threads (`eddy serve --workers`); 0 serves partitions inline. */
  readonly workers: number;
  /** e2e and group consumers: stored batches the broker may send ahead of the handler. */
  readonly credits: number;
  /** group: consumer processes, each one member of the durable subscription. */
  readonly consumers: number;
  /**
   * e2e consumer: the subscription's filter (Subscriptions API filters, or
   * `{ wasm: name }` for one of the built example filters in dist/filters,
   * uploaded first); null for none.
   */
  readonly consumerFilter: unknown;
  /** Where the broker's temp data dirs go (the disk being measured). */
  readonly tmpDir: string;
  /** If set, every process writes a V8 CPU profile here (`--cpu-prof`), named by scenario and role. */
  readonly profileDir: string | null;
}

export const defaultBrokerBenchOptions: BrokerBenchOptions = {
  durationMs: 5000,
  warmupMs: 1000,
  publishers: 1,
  inFlight: 4096,
  lingerMs: 0, // the SDK's default: a batch goes when the publishing code yields
  maxBatchBytes: 256 * 1024,
  compressionThresholdBytes: 16 * 1024, // the SDK's default
  data: 'random',
  sendIntervalMs: 1,
  partitions: 1,
  topicConfig: {},
  workers: 0,
  credits: 64,
  consumers: 4,
  consumerFilter: null,
  tmpDir: os.tmpdir(),
  profileDir: null,
};

/** Milliseconds, µs resolution (HdrHistogram, 3 significant digits). */
export interface LatencySummary {
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

/** What every scenario's result says of its load, whichever broker it measured. */
export interface LoadParams {
  readonly eventBytes: number;
  readonly publishers: number;
  /** Latency scenarios: offered events/s, all publishers together. */
  readonly rate?: number;
  /** Throughput: publishes outstanding per publisher. */
  readonly inFlight?: number;
  /** Keyed publishes: distinct keys the events cycle through (absent: unkeyed). */
  readonly keys?: number;
  /** Latency scenarios sending more often than timer ticks: the send interval (absent: 1 ms ticks). */
  readonly sendIntervalMs?: number;
  /** The events' data when it is not random bytes (`--data`). */
  readonly data?: PayloadKind;
}

/** Eddy's settings of a scenario: its ack level, the SDK's batching and the broker's layout. */
export interface EddyParams {
  readonly ack: AckLevel;
  readonly lingerMs: number;
  readonly maxBatchBytes: number;
  /** The SDK's LZ4 threshold when it is not the default (`--compression-threshold-bytes`). */
  readonly compressionThresholdBytes?: number;
  readonly partitions: number;
  readonly workers: number;
  /** The topic's settings given by `--topic-config` (wire names), when any were. */
  readonly topicConfig?: Readonly<Record<string, string>>;
  readonly consumerFilter?: string;
  /** group-latency: the durable subscription's type, and its members (one process each). */
  readonly subscriptionType?: GroupSubscriptionType;
  readonly consumers?: number;
}

export type BrokerBenchResult = ScenarioResult<LoadParams & EddyParams>;

/** One scenario's figures; `Params` holds the load and the settings of the broker measured. */
export interface ScenarioResult<Params extends LoadParams = LoadParams> {
  readonly name: ScenarioName;
  readonly params: Params;
  /** Throughput: acks per second in the window. Latency: the achieved rate (acked, or consumed for e2e). */
  readonly eventsPerSec: number;
  /** Payload (event data) bytes per second, 1 MB = 10^6 bytes. */
  readonly mbPerSec: number;
  /** Publish-ack (publish-latency) or publish-to-consume (e2e-latency, group-latency) latency. */
  readonly latencyMs?: LatencySummary;
  readonly events: number;
  readonly durationMs: number;
  /** Measured events on the offered schedule. */
  readonly offeredEvents?: number;
  /** Scheduled events the publishers never sent (they ran out of time). */
  readonly unsent?: number;
  /**
   * Latency scenarios: the offered rate was not held (see `heldRate`): the percentiles are mostly
   * queueing, and a lower bound where events went unsent.
   */
  readonly overloaded?: true;
  /** A `max` rate: the rates tried on the way to this one, in order. */
  readonly maxRateProbes?: readonly MaxRateProbe[];
  /**
   * e2e: measured events acked but not received in time. group: events acked (warm-up included)
   * that no member received in time.
   */
  readonly lost?: number;
  /** group: deliveries beyond each event's first, over all members (at-least-once allows them). */
  readonly duplicates?: number;
  readonly errors?: number;
  readonly firstError?: string;
  /** How late the generators themselves called `publish` against the schedule. */
  readonly sendLagMs?: LatencySummary;
  /** e2e, group: publish-ack latency of the same events. */
  readonly publishAckLatencyMs?: LatencySummary;
  /**
   * The broker process' peak resident memory over the scenario, MB (10^6 bytes; Linux only):
   * the kernel's high-water mark (VmHWM) where the server was started for the scenario,
   * otherwise the highest of VmRSS sampled every 100 ms from its start to its end.
   */
  readonly brokerPeakRssMb?: number;
  /**
   * The highest of the broker process' RssAnon sampled every 100 ms, MB (Linux only): its private
   * memory (heap, buffers), without the file pages it maps. Eddy's readers map the segments they
   * read, so its RSS also counts the page cache of what was consumed, which the kernel reclaims.
   */
  readonly brokerPeakAnonMb?: number;
  /**
   * CPU cores each side used during the measured window (Linux only), `other`: what the rest of
   * the machine used meanwhile, and `steal`: cores' worth of time a hypervisor took away. A side
   * near 1.0 is saturated; `other` or `steal` well above 0 make a noisy run.
   */
  readonly cpuCores?: CpuCores;
}

export interface CpuCores {
  readonly broker: number;
  readonly publishers: number;
  /** The consumer processes together (e2e: one; group: every member). */
  readonly consumer?: number;
  readonly other: number;
  /** Time the hypervisor gave this machine's cores to other guests while they had work. */
  readonly steal: number;
}

/** A latency scenario at an offered rate, or one that searches the highest rate held. */
function atRate(scenario: Scenario, rate: OfferedRate): Scenario {
  return rate === 'max' ? { ...scenario, findMaxRate: true } : { ...scenario, rate };
}

/** The scenarios of `eddy bench publish`: throughput for each size × ack, then latency at each rate. */
export function publishScenarios(
  throughput: { readonly eventBytes: readonly number[]; readonly acks: readonly AckLevel[] } | null,
  latency: {
    readonly eventBytes: readonly number[];
    readonly acks: readonly AckLevel[];
    readonly rates: readonly OfferedRate[];
  } | null,
): Scenario[] {
  const scenarios: Scenario[] = [];
  for (const eventBytes of throughput?.eventBytes ?? []) {
    for (const ack of throughput?.acks ?? []) scenarios.push({ name: 'publish-throughput', eventBytes, ack });
  }
  for (const eventBytes of latency?.eventBytes ?? []) {
    for (const ack of latency?.acks ?? []) {
      for (const rate of latency?.rates ?? [])
        scenarios.push(atRate({ name: 'publish-latency', eventBytes, ack }, rate));
    }
  }
  return scenarios;
}

/** The scenarios of `eddy bench e2e`: publish-to-consume latency at each rate. */
export function e2eScenarios(
  eventBytes: readonly number[],
  acks: readonly AckLevel[],
  rates: readonly OfferedRate[],
): Scenario[] {
  return eventBytes.flatMap((bytes) =>
    acks.flatMap((ack) =>
      rates.map((rate): Scenario => atRate({ name: 'e2e-latency', eventBytes: bytes, ack }, rate)),
    ),
  );
}

/** The scenarios of `eddy bench group`: publish-to-consume latency through each subscription type at each rate. */
export function groupScenarios(
  subscriptionTypes: readonly GroupSubscriptionType[],
  eventBytes: readonly number[],
  acks: readonly AckLevel[],
  rates: readonly OfferedRate[],
): Scenario[] {
  return subscriptionTypes.flatMap((subscriptionType) =>
    e2eScenarios(eventBytes, acks, rates).map((scenario): Scenario => ({
      ...scenario,
      name: 'group-latency',
      subscriptionType,
    })),
  );
}

/**
 * Every scenario once per publisher count and per key count (0: unkeyed), in that order: the
 * load dimensions every broker benchmark shares.
 */
export function withLoads(
  scenarios: readonly Scenario[],
  publishers: readonly number[],
  keys: readonly number[],
): Scenario[] {
  return scenarios.flatMap((scenario) =>
    publishers.flatMap((count) =>
      keys.map((keyCount): Scenario => ({
        ...scenario,
        publishers: count,
        ...(keyCount > 0 ? { keys: keyCount } : {}),
      })),
    ),
  );
}

const here = path.dirname(fileURLToPath(import.meta.url));
/** Compiled paths: this file runs from dist/bench/. */
const cliPath = path.join(here, '..', 'src', 'cli', 'main.js');
const generatorPath = path.join(here, 'load-generator.js');
/** Preloaded into every server the benchmarks start, so that none outlives its benchmark. */
export const watchdogUrl = new URL('./parent-watchdog.js', import.meta.url).href;

const BROKER_START_TIMEOUT_MS = 30_000;
const BROKER_STOP_TIMEOUT_MS = 20_000;
const CHILD_EXIT_TIMEOUT_MS = 5_000;
/** Generators start together this long after they were told to, so that all have the message. */
const START_DELAY_MS = 250;
const STDERR_TAIL_BYTES = 4096;

/** Children and temp dirs alive now, so that any way out of the benchmark can remove them. */
export class Resources {
  readonly children = new Set<ChildProcess>();
  readonly dirs = new Set<string>();
  /** Servers that are not our children (a child keeps them), killed with the rest all the same. */
  readonly pids = new Set<number>();

  track(child: ChildProcess): ChildProcess {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Synchronous, so that it can run in an `exit` listener. */
  killAll(): void {
    for (const child of this.children) child.kill('SIGKILL');
    for (const pid of this.pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    this.pids.clear();
    for (const dir of this.dirs) fs.rmSync(dir, { recursive: true, force: true });
    this.dirs.clear();
  }
}

export function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export function profileArgs(options: BrokerBenchOptions, name: string): string[] {
  return options.profileDir === null
    ? []
    : ['--cpu-prof', '--cpu-prof-dir', options.profileDir, '--cpu-prof-name', `${name}.cpuprofile`];
}

/** `eddy serve --port 0 --data <dir> --workers <n>` in a child process. */
class BrokerProcess {
  readonly #child: ChildProcess;
  readonly url: string;

  get pid(): number | undefined {
    return this.#child.pid;
  }

  private constructor(child: ChildProcess, url: string) {
    this.#child = child;
    this.url = url;
  }

  static async start(
    dataDir: string,
    workers: number,
    execArgv: string[],
    resources: Resources,
  ): Promise<BrokerProcess> {
    const args = [
      'serve',
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--data',
      dataDir,
      '--workers',
      String(workers),
    ];
    const child = resources.track(
      fork(cliPath, args, {
        execArgv: ['--import', watchdogUrl, ...execArgv],
        env: { ...process.env, EDDY_BENCH_ORPHAN_DIR: dataDir },
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      }),
    );
    let stderr = '';
    child.on('error', (error) => (stderr += `\n${error.message}`));
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-STDERR_TAIL_BYTES)));
    let stdout = '';
    child.stdout?.setEncoding('utf8');
    const listening = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('the broker did not start listening in time')),
        BROKER_START_TIMEOUT_MS,
      );
      // Keep reading stdout for the broker's whole life: a full pipe would block it.
      child.stdout?.on('data', (chunk: string) => {
        stdout = (stdout + chunk).slice(-STDERR_TAIL_BYTES);
        const match = /eddy listening on (http:\/\/\S+)/.exec(stdout);
        if (match?.[1] !== undefined) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the broker exited (${signal ?? code}) before listening: ${stderr.trim()}`));
      });
    });
    try {
      return new BrokerProcess(child, await listening);
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    }
  }

  /** SIGTERM (drain, flush, exit), then SIGKILL if it takes too long. */
  async stop(): Promise<void> {
    this.#child.kill('SIGTERM');
    if (!(await exited(this.#child, BROKER_STOP_TIMEOUT_MS))) {
      this.#child.kill('SIGKILL');
      await exited(this.#child, CHILD_EXIT_TIMEOUT_MS);
    }
  }
}

/**
 * A forked load generator (`modulePath`: Eddy's or a peer's) and the messages it sent that nobody
 * has taken yet. Publishers' `tick`s go to `onTick` instead, never into the queue.
 */
export class GeneratorProcess {
  readonly #child: ChildProcess;
  readonly #role: string;
  readonly #messages: FromGenerator[] = [];
  #waiter: (() => void) | null = null;
  #exit: string | null = null;
  onTick: ((acked: number, atEpochMs: number) => void) | null = null;

  constructor(role: string, execArgv: string[], resources: Resources, modulePath: string = generatorPath) {
    this.#role = role;
    this.#child = resources.track(
      fork(modulePath, [], { execArgv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }),
    );
    this.#child.on('message', (message: FromGenerator) => {
      if (message.type === 'tick') {
        this.onTick?.(message.acked, message.atEpochMs);
        return;
      }
      this.#messages.push(message);
      this.#waiter?.();
    });
    this.#child.once('exit', (code, signal) => {
      this.#exit = `${signal ?? code}`;
      this.#waiter?.();
    });
    // A failed fork, or a message to a child already gone: reported by next(), never thrown here.
    this.#child.on('error', (error) => {
      this.#exit ??= error.message;
      this.#waiter?.();
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  send(message: ToGenerator): void {
    this.#child.send(message);
  }

  /** The next message of `type`; rejects on `failed`, on exit, or after `timeoutMs`. */
  async next<T extends FromGenerator['type']>(
    type: T,
    timeoutMs: number,
  ): Promise<Extract<FromGenerator, { type: T }>> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const message = this.#messages.shift();
      if (message?.type === 'failed') throw new Error(`${this.#role}: ${message.message}`);
      if (message?.type === type) return message as Extract<FromGenerator, { type: T }>;
      if (message !== undefined) continue;
      if (this.#exit !== null) throw new Error(`${this.#role} exited (${this.#exit}) before sending ${type}`);
      const remaining = deadline - performance.now();
      if (remaining <= 0) throw new Error(`${this.#role} sent no ${type} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.#waiter = () => {
          clearTimeout(timer);
          this.#waiter = null;
          resolve();
        };
      });
    }
  }

  /** Asks it to close its client and exit; kills it if it does not. */
  async stop(): Promise<void> {
    if (this.#exit === null && this.#child.connected) this.send({ type: 'exit' });
    if (!(await exited(this.#child, CHILD_EXIT_TIMEOUT_MS))) this.#child.kill('SIGKILL');
  }
}

async function createTopic(
  url: string,
  name: string,
  partitions: number,
  config: Readonly<Record<string, string>>,
): Promise<void> {
  const response = await fetch(`${url}/v1/topics`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, partitions, config }),
  });
  if (response.status !== 201)
    throw new Error(`creating topic ${name}: HTTP ${response.status} ${await response.text()}`);
}

/** A durable subscription of `type` over `topic`, reading from `latest`, with the broker's default settings. */
async function createSubscription(
  url: string,
  name: string,
  topic: string,
  type: GroupSubscriptionType,
): Promise<void> {
  const response = await fetch(`${url}/v1/subscriptions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, topic, type, start: 'latest' }),
  });
  if (response.status !== 201)
    throw new Error(`creating subscription ${name}: HTTP ${response.status} ${await response.text()}`);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Resolves once `members` have joined subscription `name` and, for a stream, every partition is
 * assigned and spread over all of them: publishing starts after the joins' rebalances are over.
 */
async function membersSettled(
  url: string,
  name: string,
  type: GroupSubscriptionType,
  members: number,
  timeoutMs: number,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const response = await fetch(`${url}/v1/subscriptions/${encodeURIComponent(name)}`);
    if (!response.ok)
      throw new Error(`describing subscription ${name}: HTTP ${response.status} ${await response.text()}`);
    const description = (await response.json()) as {
      readonly members: readonly string[];
      readonly partitions: readonly { readonly member: string | null }[];
    };
    const readers = new Set(description.partitions.map((p) => p.member));
    const assigned =
      type === 'queue' ||
      (!readers.has(null) && readers.size === Math.min(members, description.partitions.length));
    if (description.members.length === members && assigned) return;
    if (performance.now() > deadline)
      throw new Error(
        `subscription ${name}: ${description.members.length} of ${members} members joined, ` +
          `partitions read by ${[...readers].join(', ')} after ${timeoutMs} ms`,
      );
    await sleep(50);
  }
}

export interface GroupTally {
  /** Measured events received by at least one member. */
  readonly events: number;
  /** Acked events (warm-up included) no member received. */
  readonly lost: number;
  /** Deliveries beyond each event's first, over all members. */
  readonly duplicates: number;
}

/** Checks every publisher's acked events off against the deliveries the members counted. */
function tally(acked: readonly (AckedEvents | null)[], consumed: readonly ConsumerResult[]): GroupTally {
  let events = 0;
  let lost = 0;
  let duplicates = 0;
  for (const [publisher, schedule] of acked.entries()) {
    if (schedule === null) continue;
    const bitmap = Buffer.from(schedule.bitmap, 'base64');
    const counts = consumed.map((result) => Buffer.from(result.deliveries?.[publisher] ?? '', 'base64'));
    for (let i = 0; i < schedule.total; i++) {
      let delivered = 0;
      for (const member of counts) delivered += member[i] ?? 0;
      if (delivered === 0) {
        if (((bitmap[i >> 3] ?? 0) & (1 << (i & 7))) !== 0) lost++;
        continue;
      }
      duplicates += delivered - 1;
      if (i >= schedule.firstMeasured) events++;
    }
  }
  return { events, lost, duplicates };
}

/** Events set in the bitmaps: what the broker acked. */
function ackedCount(acked: readonly (AckedEvents | null)[]): number {
  let count = 0;
  for (const schedule of acked) {
    for (const byte of Buffer.from(schedule?.bitmap ?? '', 'base64')) {
      for (let bits = byte; bits !== 0; bits &= bits - 1) count++;
    }
  }
  return count;
}

/**
 * The members' results once they have received as many events as the broker acked (counting
 * every delivery; a cheap question, so that members still busy with a backlog are not slowed),
 * then, while an acked event is still missing from all of them, their results again until
 * `graceMs` is over.
 */
async function collectMembers(
  members: readonly GeneratorProcess[],
  acked: readonly (AckedEvents | null)[],
  graceMs: number,
  timeoutMs: number,
): Promise<{ readonly consumed: ConsumerResult[]; readonly tally: GroupTally }> {
  const deadline = performance.now() + graceMs;
  const expected = ackedCount(acked);
  for (;;) {
    for (const member of members) member.send({ type: 'progress' });
    let received = 0;
    for (const member of members) received += (await member.next('progress', timeoutMs)).received;
    if (received >= expected || performance.now() >= deadline) break;
    await sleep(50);
  }
  for (;;) {
    for (const member of members) member.send({ type: 'report' });
    const consumed: ConsumerResult[] = [];
    for (const member of members) {
      const { result } = await member.next('result', timeoutMs);
      if (result.role === 'consumer') consumed.push(result);
    }
    const counted = tally(acked, consumed);
    if (counted.lost === 0 || performance.now() >= deadline) return { consumed, tally: counted };
    await sleep(250);
  }
}

/** For `{ wasm: name }`: uploads dist/filters/<name>.wasm under that name. */
async function uploadFilter(url: string, filter: unknown): Promise<void> {
  const name = (filter as { wasm?: unknown } | null)?.wasm;
  if (typeof name !== 'string') return;
  const wasm = fs.readFileSync(path.join(here, '..', 'filters', `${name}.wasm`));
  const response = await fetch(`${url}/v1/filters/${name}?kind=filter`, { method: 'PUT', body: wasm });
  if (!response.ok)
    throw new Error(`uploading filter ${name}: HTTP ${response.status} ${await response.text()}`);
}

/** Every histogram (compressed base64, µs) added into one. */
export function merged(encoded: readonly (string | null)[]): Histogram | null {
  let total: Histogram | null = null;
  for (const text of encoded) {
    if (text === null) continue;
    const histogram = decodeFromCompressedBase64(text);
    if (total === null) total = histogram;
    else total.add(histogram);
  }
  return total;
}

export function summary(histogram: Histogram | null): LatencySummary | undefined {
  if (histogram === null || histogram.totalCount === 0) return undefined;
  const ms = (microseconds: number): number => Math.round(microseconds) / 1000;
  return {
    p50: ms(histogram.getValueAtPercentile(50)),
    p95: ms(histogram.getValueAtPercentile(95)),
    p99: ms(histogram.getValueAtPercentile(99)),
    p999: ms(histogram.getValueAtPercentile(99.9)),
    max: ms(histogram.maxValue),
  };
}

export function rates(
  events: number,
  eventBytes: number,
  elapsedMs: number,
): { eventsPerSec: number; mbPerSec: number } {
  const seconds = elapsedMs / 1000;
  return {
    eventsPerSec: Math.round(events / seconds),
    mbPerSec: Math.round(((events * eventBytes) / 1e6 / seconds) * 10) / 10,
  };
}

/** /proc reports CPU times in USER_HZ ticks, 100 per second on Linux whatever the kernel's HZ. */
const USER_HZ = 100;

/** CPU seconds a process has used so far, from /proc (null where there is none). */
function processCpuSeconds(pid: number | undefined): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
  } catch {
    return null;
  }
}

/**
 * CPU seconds the whole machine has been busy (all cores), and the seconds the hypervisor ran
 * something else while this machine wanted to run (steal), from /proc/stat.
 */
function machineSeconds(): { readonly busy: number; readonly steal: number } | null {
  try {
    const [, ...ticks] = (fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/);
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is also in user.
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = ticks.map(Number);
    return { busy: (user + nice + system + irq + softirq) / USER_HZ, steal: steal / USER_HZ };
  } catch {
    return null;
  }
}

interface CpuSample {
  readonly broker: number | null;
  readonly publishers: (number | null)[];
  readonly consumers: (number | null)[];
  readonly machine: { readonly busy: number; readonly steal: number } | null;
}

function sampleCpu(
  broker: number | undefined,
  publishers: (number | undefined)[],
  consumers: (number | undefined)[],
): CpuSample {
  return {
    broker: processCpuSeconds(broker),
    publishers: publishers.map(processCpuSeconds),
    consumers: consumers.map(processCpuSeconds),
    machine: machineSeconds(),
  };
}

/** Cores used between two samples taken `elapsedMs` apart, or undefined if /proc could not tell. */
function cpuCores(before: CpuSample, after: CpuSample, elapsedMs: number): CpuCores | undefined {
  const seconds = elapsedMs / 1000;
  const used = (a: number | null, b: number | null): number | null =>
    a === null || b === null ? null : (b - a) / seconds;
  const broker = used(before.broker, after.broker);
  const publisherCores = before.publishers.map((value, i) => used(value, after.publishers[i] ?? null));
  const consumerCores = before.consumers.map((value, i) => used(value, after.consumers[i] ?? null));
  const machine = used(before.machine?.busy ?? null, after.machine?.busy ?? null);
  const steal = used(before.machine?.steal ?? null, after.machine?.steal ?? null);
  if (broker === null || machine === null || steal === null || publisherCores.some((value) => value === null))
    return undefined;
  const publishers = publisherCores.reduce<number>((sum, value) => sum + (value ?? 0), 0);
  // A consumer /proc could not read leaves the consumers' figure out rather than understate it.
  const consumer =
    consumerCores.length === 0 || consumerCores.some((value) => value === null)
      ? null
      : consumerCores.reduce<number>((sum, value) => sum + (value ?? 0), 0);
  const round = (value: number): number => Math.round(value * 100) / 100;
  return {
    broker: round(broker),
    publishers: round(publishers),
    ...(consumer === null ? {} : { consumer: round(consumer) }),
    other: round(Math.max(0, machine - broker - publishers - (consumer ?? 0))),
    steal: round(steal),
  };
}

/** Samples CPU use at the start and the end of the measured window (epoch ms). */
async function measureCpu(
  pids: () => CpuSample,
  fromEpochMs: number,
  toEpochMs: number,
): Promise<CpuCores | undefined> {
  const sleepUntil = (epochMs: number): Promise<void> =>
    new Promise((resolve) => setTimeout(resolve, Math.max(0, epochMs - epochNow())));
  await sleepUntil(fromEpochMs);
  const before = pids();
  const startedMs = epochNow();
  await sleepUntil(toEpochMs);
  return cpuCores(before, pids(), epochNow() - startedMs);
}

function slug(scenario: Scenario, index: number): string {
  return [
    index,
    scenario.name,
    ...(scenario.subscriptionType === undefined ? [] : [scenario.subscriptionType]),
    scenario.eventBytes,
    scenario.ack,
    scenario.rate ?? (scenario.name === 'publish-throughput' ? 'closed' : 'max'),
    ...(scenario.publishers === undefined ? [] : [`${scenario.publishers}p`]),
    ...(scenario.keys === undefined ? [] : [`${scenario.keys}k`]),
  ].join('-');
}

const RSS_SAMPLE_INTERVAL_MS = 100;

/** A field of /proc/<pid>/status in kB (VmRSS, VmHWM, RssAnon), or null where there is none. */
function statusKb(pid: number | undefined, field: 'VmRSS' | 'VmHWM' | 'RssAnon'): number | null {
  if (pid === undefined) return null;
  try {
    const match = new RegExp(`^${field}:\\s*(\\d+) kB`, 'm').exec(
      fs.readFileSync(`/proc/${pid}/status`, 'utf8'),
    );
    return match?.[1] === undefined ? null : Number(match[1]);
  } catch {
    return null;
  }
}

/** A server's peak memory over a scenario, MB; undefined where /proc does not tell. */
export interface PeakMemory {
  readonly rssMb: number | undefined;
  readonly anonMb: number | undefined;
}

const megabytes = (kb: number): number | undefined =>
  kb === 0 ? undefined : Math.round((kb * 1024) / 1e5) / 10;

/**
 * Follows a server's resident memory from now until `stop`, which returns the peaks: of RSS,
 * VmHWM when the server was started for the scenario (the kernel's own peak, spikes included),
 * else the highest VmRSS sampled (a shared server's VmHWM would be the peak of its whole life);
 * of RssAnon, the highest sampled (the kernel keeps no peak of it).
 */
export function followRss(pid: number | undefined, startedForScenario: boolean): () => PeakMemory {
  let peakKb = 0;
  let peakAnonKb = 0;
  const sample = (): void => {
    peakKb = Math.max(peakKb, statusKb(pid, 'VmRSS') ?? 0);
    peakAnonKb = Math.max(peakAnonKb, statusKb(pid, 'RssAnon') ?? 0);
  };
  sample();
  const timer = setInterval(sample, RSS_SAMPLE_INTERVAL_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    sample();
    if (startedForScenario) peakKb = Math.max(peakKb, statusKb(pid, 'VmHWM') ?? 0);
    return { rssMb: megabytes(peakKb), anonMb: megabytes(peakAnonKb) };
  };
}

/**
 * One broker under test, as `runScenario` drives it: Eddy here, the peers in `peers/`. A system
 * only sets its broker side up and says how its generators connect; the load, the measurement
 * and the figures are the same code for every system.
 */
export interface BenchSystem<Params extends object> {
  /** Prefixes the processes' profile names (`eddy` keeps the names it always had). */
  readonly name: string;
  /** The compiled generator module forked as its publishers and consumers. */
  readonly generatorPath: string;
  /** A fresh broker side for one scenario (a broker, a stream, a key nobody used before). */
  prepare(
    scenario: Scenario,
    index: number,
    name: string,
    options: BrokerBenchOptions,
    resources: Resources,
  ): Promise<PreparedSystem<Params>>;
}

export interface PreparedSystem<Params extends object> {
  /** The process whose CPU and memory are reported as the broker's, if known. */
  readonly serverPid: number | undefined;
  /** Whether that process was started for this scenario (its peak memory is then the scenario's). */
  readonly serverStartedForScenario: boolean;
  /** The system's settings, reported with the load in the result's `params`. */
  readonly params: Params;
  /** The `configure` spec of publisher `load.index`. */
  publisherSpec(load: LoadPublisherSpec): unknown;
  /** The `configure` spec of consumer `index`; `group` for the members of a group-latency scenario. */
  consumerSpec(index: number, group: GroupSubscriptionType | null): unknown;
  /** group-latency: resolves once `members` have joined and the subscription has settled. */
  membersJoined?(members: number, timeoutMs: number): Promise<void>;
  /** Stops and removes what `prepare` made; called whatever happened. */
  close(): Promise<void>;
}

/** Called about once a second while publishers run: events acked so far (warm-up included). */
export type ProgressListener = (acked: number, atEpochMs: number) => void;

/** Eddy: `eddy serve` in a child process with a fresh data dir and topic per scenario. */
export const eddySystem: BenchSystem<EddyParams> = {
  name: 'eddy',
  generatorPath,
  async prepare(scenario, index, name, options, resources) {
    const dataDir = fs.mkdtempSync(path.join(options.tmpDir, 'eddy-bench-broker-'));
    resources.dirs.add(dataDir);
    let broker: BrokerProcess | null = null;
    const close = async (): Promise<void> => {
      await broker?.stop();
      fs.rmSync(dataDir, { recursive: true, force: true });
      resources.dirs.delete(dataDir);
    };
    try {
      broker = await BrokerProcess.start(
        dataDir,
        options.workers,
        profileArgs(options, `${name}.broker`),
        resources,
      );
      const url = broker.url;
      const topic = `bench-${index}`;
      await createTopic(url, topic, options.partitions, options.topicConfig);
      await uploadFilter(url, options.consumerFilter);
      // group-latency: the durable subscription, created before anyone joins or publishes.
      const group = scenario.name === 'group-latency' ? (scenario.subscriptionType ?? 'stream') : null;
      const subscription = `bench-${index}-${group ?? 'plain'}`;
      if (group !== null) await createSubscription(url, subscription, topic, group);
      const params: EddyParams = {
        ack: scenario.ack,
        lingerMs: options.lingerMs,
        maxBatchBytes: options.maxBatchBytes,
        ...(options.compressionThresholdBytes === defaultBrokerBenchOptions.compressionThresholdBytes
          ? {}
          : { compressionThresholdBytes: options.compressionThresholdBytes }),
        partitions: options.partitions,
        workers: options.workers,
        ...(Object.keys(options.topicConfig).length === 0 ? {} : { topicConfig: options.topicConfig }),
        ...(scenario.name === 'e2e-latency' && options.consumerFilter !== null
          ? { consumerFilter: JSON.stringify(options.consumerFilter) }
          : {}),
        ...(group === null ? {} : { subscriptionType: group, consumers: options.consumers }),
      };
      return {
        serverPid: broker.pid,
        serverStartedForScenario: true,
        params,
        publisherSpec: (load): GeneratorSpec => ({
          ...load,
          url,
          topic,
          ack: scenario.ack,
          lingerMs: options.lingerMs,
          maxBatchBytes: options.maxBatchBytes,
          compressionThresholdBytes: options.compressionThresholdBytes,
        }),
        consumerSpec: (i, joining): GeneratorSpec => ({
          role: 'consumer',
          url,
          topic,
          credits: options.credits,
          filter: joining === null ? options.consumerFilter : null,
          join: joining === null ? null : { subscription, member: `bench-member-${i}` },
        }),
        membersJoined: (members, timeoutMs) =>
          membersSettled(url, subscription, group ?? 'stream', members, timeoutMs),
        close,
      };
    } catch (error) {
      await close();
      throw error;
    }
  },
};

/** What the generators of one scenario reported, and when its measured window began. */
export interface ScenarioReports {
  readonly published: readonly PublisherResult[];
  /** Null without consumers (publish scenarios); one result per consumer process otherwise. */
  readonly consumed: readonly ConsumerResult[] | null;
  /** group-latency: the acked events checked off against the members' deliveries. */
  readonly groupTally: GroupTally | null;
  readonly measureFromEpochMs: number;
  readonly cpuCores: CpuCores | undefined;
  /** The broker's peak resident memory over the scenario, MB. */
  readonly brokerPeakRssMb?: number | undefined;
  readonly brokerPeakAnonMb?: number | undefined;
}

/** The figures of one scenario from its generators' reports: a pure function of them. */
export function shapeResult<Params extends LoadParams>(
  scenario: Scenario,
  durationMs: number,
  params: Params,
  reports: ScenarioReports,
): ScenarioResult<Params> {
  const { published, consumed, groupTally, measureFromEpochMs, cpuCores, brokerPeakRssMb, brokerPeakAnonMb } =
    reports;
  const acked = published.reduce((sum, r) => sum + r.events, 0);
  const usage = {
    ...(brokerPeakRssMb === undefined ? {} : { brokerPeakRssMb }),
    ...(brokerPeakAnonMb === undefined ? {} : { brokerPeakAnonMb }),
    ...(cpuCores === undefined ? {} : { cpuCores }),
  };
  const errors = published.reduce((sum, r) => sum + r.errors, 0);
  const firstError = published.find((r) => r.firstError !== null)?.firstError;
  const failures = {
    ...(errors > 0 ? { errors } : {}),
    ...(firstError === undefined || firstError === null ? {} : { firstError }),
  };
  if (scenario.name === 'publish-throughput') {
    return {
      name: scenario.name,
      params,
      ...rates(acked, scenario.eventBytes, durationMs),
      events: acked,
      durationMs,
      ...failures,
      ...usage,
    };
  }
  const offeredEvents = published.reduce((sum, r) => sum + r.scheduled, 0);
  const unsent = published.reduce((sum, r) => sum + r.unsent, 0);
  const sendLagMs = summary(merged(published.map((r) => r.sendLag)));
  const publishAckMs = summary(merged(published.map((r) => r.latency)));
  // The achieved rate: measured events over the time from the window's start to the last of
  // them acked (or consumed), never less than the window, so a backlog lowers it.
  const lastEpochMs = Math.max(
    ...(consumed === null
      ? published.map((r) => r.lastAckEpochMs)
      : consumed.map((r) => r.lastReceiveEpochMs)),
  );
  // group: measured events received at least once; e2e: measured events received.
  const events =
    consumed === null ? acked : (groupTally?.events ?? consumed.reduce((sum, r) => sum + r.events, 0));
  const elapsedMs = Math.max(durationMs, lastEpochMs - measureFromEpochMs);
  const latencyMs = consumed === null ? publishAckMs : summary(merged(consumed.map((r) => r.latency)));
  const achieved = rates(events, scenario.eventBytes, elapsedMs);
  const held = heldRate(scenario.rate ?? 0, achieved.eventsPerSec, unsent, latencyMs);
  return {
    name: scenario.name,
    params,
    ...achieved,
    ...(latencyMs === undefined ? {} : { latencyMs }),
    events,
    durationMs: Math.round(elapsedMs),
    offeredEvents,
    ...(unsent > 0 ? { unsent } : {}),
    ...(held ? {} : { overloaded: true as const }),
    ...(consumed === null ? {} : { lost: groupTally?.lost ?? Math.max(0, acked - events) }),
    ...(groupTally === null ? {} : { duplicates: groupTally.duplicates }),
    ...failures,
    ...(sendLagMs === undefined ? {} : { sendLagMs }),
    ...(consumed === null || publishAckMs === undefined ? {} : { publishAckLatencyMs: publishAckMs }),
    ...usage,
  };
}

/**
 * One scenario against `system`, prepared fresh: consumers subscribed (or joined) first, then
 * publishers started together, then the results gathered and shaped. Every generator is stopped
 * and the system closed on the way out, whatever happened.
 */
export async function runScenario<Params extends object>(
  system: BenchSystem<Params>,
  scenario: Scenario,
  index: number,
  options: BrokerBenchOptions,
  resources: Resources,
  onProgress: ProgressListener | null = null,
): Promise<ScenarioResult<LoadParams & Params>> {
  const name = system.name === 'eddy' ? slug(scenario, index) : `${system.name}-${slug(scenario, index)}`;
  const generators: GeneratorProcess[] = [];
  const spawn = (role: string): GeneratorProcess => {
    const generator = new GeneratorProcess(
      role,
      profileArgs(options, `${name}.${role}`),
      resources,
      system.generatorPath,
    );
    generators.push(generator);
    return generator;
  };
  let prepared: PreparedSystem<Params> | null = null;
  let peakRss: (() => PeakMemory) | null = null;
  const publisherCount = scenario.publishers ?? options.publishers;
  try {
    prepared = await system.prepare(scenario, index, name, options, resources);
    const ready = prepared;
    peakRss = followRss(ready.serverPid, ready.serverStartedForScenario);
    // Generous: the generators' own deadlines (a schedule plus drain time) come first.
    const deadlineMs = options.warmupMs + 3 * options.durationMs + 60_000;
    const readyTimeoutMs = 30_000;

    const group = scenario.name === 'group-latency' ? (scenario.subscriptionType ?? 'stream') : null;
    const consumerCount = group !== null ? options.consumers : scenario.name === 'e2e-latency' ? 1 : 0;
    const consumers = Array.from({ length: consumerCount }, (_, i) => {
      const consumer = spawn(group === null ? 'consumer' : `consumer-${i}`);
      consumer.send({ type: 'configure', spec: ready.consumerSpec(i, group), deadlineMs });
      return consumer;
    });
    // Subscribed (to new events only) or joined before anything is published.
    for (const consumer of consumers) await consumer.next('ready', readyTimeoutMs);
    if (group !== null) await ready.membersJoined?.(options.consumers, readyTimeoutMs);
    const ticks: number[] = new Array<number>(publisherCount).fill(0);
    const publishers = Array.from({ length: publisherCount }, (_, i) => {
      const publisher = spawn(`publisher-${i}`);
      if (onProgress !== null) {
        publisher.onTick = (acked, atEpochMs) => {
          ticks[i] = acked;
          onProgress(
            ticks.reduce((sum, value) => sum + value, 0),
            atEpochMs,
          );
        };
      }
      const load: LoadPublisherSpec = {
        role: 'publisher',
        eventBytes: scenario.eventBytes,
        rate: scenario.rate ?? null,
        index: i,
        publishers: publisherCount,
        inFlight: options.inFlight,
        warmupMs: options.warmupMs,
        durationMs: options.durationMs,
        reportAcked: group !== null,
        keys: scenario.keys ?? 0,
        sendIntervalMs: options.sendIntervalMs,
        data: options.data,
      };
      publisher.send({ type: 'configure', spec: ready.publisherSpec(load), deadlineMs });
      return publisher;
    });
    for (const publisher of publishers) await publisher.next('ready', readyTimeoutMs);

    const startAtEpochMs = epochNow() + START_DELAY_MS;
    const measureFromEpochMs = startAtEpochMs + options.warmupMs;
    for (const publisher of publishers) publisher.send({ type: 'start', startAtEpochMs });
    const cpu = measureCpu(
      () =>
        sampleCpu(
          ready.serverPid,
          publishers.map((p) => p.pid),
          consumers.map((c) => c.pid),
        ),
      measureFromEpochMs,
      measureFromEpochMs + options.durationMs,
    );
    const published: PublisherResult[] = [];
    for (const publisher of publishers) {
      const { result } = await publisher.next('result', deadlineMs);
      if (result.role === 'publisher') published.push(result);
    }
    let consumed: ConsumerResult[] | null = null;
    let groupTally: GroupTally | null = null;
    const acked = published.reduce((sum, r) => sum + r.events, 0);
    const graceMs = Math.max(5000, options.durationMs);
    if (group !== null) {
      const collected = await collectMembers(
        consumers,
        published.map((r) => r.acked),
        graceMs,
        deadlineMs,
      );
      consumed = collected.consumed;
      groupTally = collected.tally;
    } else if (consumers[0] !== undefined) {
      consumers[0].send({ type: 'finish', expectedEvents: acked, graceMs });
      const { result } = await consumers[0].next('result', deadlineMs);
      if (result.role === 'consumer') consumed = [result];
    }
    const params = {
      eventBytes: scenario.eventBytes,
      publishers: publisherCount,
      ...(scenario.rate === undefined ? { inFlight: options.inFlight } : { rate: scenario.rate }),
      ...(scenario.keys === undefined || scenario.keys === 0 ? {} : { keys: scenario.keys }),
      ...(scenario.rate === undefined || options.sendIntervalMs >= 1
        ? {}
        : { sendIntervalMs: options.sendIntervalMs }),
      ...(options.data === 'random' ? {} : { data: options.data }),
      ...ready.params,
    };
    const cpuCores = await cpu;
    const { rssMb: brokerPeakRssMb, anonMb: brokerPeakAnonMb } = peakRss();
    peakRss = null;
    return shapeResult(scenario, options.durationMs, params, {
      published,
      consumed,
      groupTally,
      measureFromEpochMs,
      cpuCores,
      brokerPeakRssMb,
      brokerPeakAnonMb,
    });
  } finally {
    peakRss?.();
    await Promise.all(generators.map((generator) => generator.stop()));
    await prepared?.close();
  }
}

/**
 * Runs `body` with a `Resources` whose children are killed and temp dirs removed on the way out,
 * also when the process is interrupted (SIGINT, SIGTERM) or exits early.
 */
export async function* withResources<T>(
  body: (resources: Resources) => AsyncGenerator<T>,
): AsyncGenerator<T> {
  const resources = new Resources();
  const onExit = (): void => resources.killAll();
  const onSignal = (signal: NodeJS.Signals): void => {
    resources.killAll();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.on('exit', onExit);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    yield* body(resources);
  } finally {
    resources.killAll();
    process.off('exit', onExit);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** A latency scenario's p99 above this means its rate was not held: the figures are queueing. */
export const HELD_P99_MS = 100;

/**
 * Whether a latency scenario held its offered rate: every scheduled event sent, 98 % of the rate
 * achieved (acked, or consumed) and p99 under `HELD_P99_MS`. Past the rate a system holds, its
 * backlog grows through the run, and latencies from the intended send times grow with it.
 */
export function heldRate(
  offered: number,
  achieved: number,
  unsent: number,
  latency: LatencySummary | undefined,
): boolean {
  return unsent === 0 && achieved >= 0.98 * offered && (latency?.p99 ?? Infinity) < HELD_P99_MS;
}

export interface MaxRateProbe {
  readonly rate: number;
  readonly held: boolean;
}

/** Rates the `max` search tries at most, and where it stops narrowing (highest held within 10 %). */
const MAX_RATE_PROBES = 6;
const MAX_RATE_PRECISION = 1.1;
/** The first rate tried when nothing of the run says where to start. */
const MAX_RATE_FIRST = 50_000;

/** The scenario at a fixed offered rate. */
function fixedRate(scenario: Scenario, rate: number): Scenario {
  // eslint-disable-next-line @typescript-eslint/no-unused-vars -- dropped: the rate is now fixed
  const { findMaxRate, ...load } = scenario;
  return { ...load, rate };
}

/** Tells the scenarios that share a load apart from those that differ only in rate. */
function loadKey(scenario: Scenario): string {
  return slug(fixedRate(scenario, 0), 0);
}

/**
 * The highest rate `run` holds, found by doubling from the highest rate known to be held (or
 * halving from the lowest known not to be) and then bisecting, geometrically, until the held and
 * failed rates are within 10 % (at most 6 runs). Returns the run at the highest held rate with
 * every probe listed, or the last failed run (overloaded) when not even 1,000/s held.
 */
export async function searchMaxRate<R extends ScenarioResult>(
  known: readonly MaxRateProbe[],
  run: (rate: number) => Promise<R>,
): Promise<R> {
  let held = Math.max(0, ...known.filter((p) => p.held).map((p) => p.rate));
  let failed = Math.min(Infinity, ...known.filter((p) => !p.held).map((p) => p.rate));
  const probes: MaxRateProbe[] = [];
  let best: R | null = null;
  let last: R | null = null;
  while (probes.length < MAX_RATE_PROBES && !(held > 0 && failed / held <= MAX_RATE_PRECISION)) {
    const rate =
      held === 0
        ? failed === Infinity
          ? MAX_RATE_FIRST
          : Math.floor(failed / 2)
        : failed === Infinity
          ? held * 2
          : Math.round(Math.sqrt(held * failed) / 1000) * 1000;
    if (rate < 1000 || rate === held || rate === failed) break;
    last = await run(rate);
    const ok = last.overloaded !== true && last.errors === undefined;
    probes.push({ rate, held: ok });
    if (ok) {
      held = rate;
      best = last;
    } else failed = rate;
  }
  // A known held rate from the listed ones may be the answer: run it again to report it here.
  if (best === null && held > 0) {
    best = await run(held);
    probes.push({ rate: held, held: best.overloaded !== true && best.errors === undefined });
  }
  const result = best ?? last;
  if (result === null) throw new Error('the max rate search ran nothing');
  return { ...result, maxRateProbes: probes };
}

/**
 * Runs the scenarios one after another, each against a fresh broker, and
 * yields one result per scenario. Children are killed and temp dirs removed on
 * the way out, also when interrupted (SIGINT, SIGTERM) or on an early exit.
 * A `findMaxRate` scenario starts its search from the rates of the same load
 * measured before it in this run.
 */
export async function* runBrokerBenchmark(
  scenarios: readonly Scenario[],
  options: BrokerBenchOptions,
  onProbe: ((scenario: Scenario, result: BrokerBenchResult) => void) | null = null,
): AsyncGenerator<BrokerBenchResult> {
  if (options.profileDir !== null) fs.mkdirSync(options.profileDir, { recursive: true });
  const measured = new Map<string, MaxRateProbe[]>();
  yield* withResources(async function* (resources) {
    for (const [index, scenario] of scenarios.entries()) {
      const known = measured.get(loadKey(scenario)) ?? [];
      measured.set(loadKey(scenario), known);
      if (scenario.findMaxRate !== true) {
        const result = await runScenario(eddySystem, scenario, index, options, resources);
        if (scenario.rate !== undefined)
          known.push({
            rate: scenario.rate,
            held: result.overloaded !== true && result.errors === undefined,
          });
        yield result;
        continue;
      }
      yield await searchMaxRate(known, async (rate) => {
        const probe = fixedRate(scenario, rate);
        const result = await runScenario(eddySystem, probe, index, options, resources);
        onProbe?.(probe, result);
        return result;
      });
    }
  });
}
