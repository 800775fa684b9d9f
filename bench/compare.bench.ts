/**
 * `eddy bench compare`: Eddy against NATS JetStream and Redis Streams in one run, on one machine,
 * with one load generator. Each scenario (publish-throughput, publish-latency, e2e-latency) runs
 * against every system in `peers`, one system at a time and never two at once, each against a
 * fresh broker side (`runScenario` from broker.bench.ts does the driving for all of them), and
 * yields one result per system. Eddy's result carries, for each peer measured in the same
 * scenario of the same run, the ratio of each of its figures to the peer's.
 *
 * Like for like:
 * - the same generator code (`generator-core.ts`): the same open-loop schedule, the same
 *   closed-loop window of `inFlight` unresolved publishes, the same coordinated-omission-corrected
 *   HdrHistograms from each event's intended send time, the same processes (one publisher, one
 *   consumer for e2e, the broker), one event per publish call;
 * - the same event data: `eventBytes` of incompressible bytes, stamped with the send time. A peer
 *   carries exactly those bytes as its message (NATS payload, the one field of a Redis entry);
 *   Eddy carries them as the CloudEvent's data, plus the attributes its SDK adds (id, source, type,
 *   time, content type: about 110 bytes more per event). MB/s counts the data only, for all;
 * - durability: each system's ack and what it stands for is in `durability`; Eddy's `leader` ack
 *   (appended, fsync within the 50 ms flush interval, flush.ms) is the one comparable to JetStream's file
 *   store and Redis' AOF `everysec`, neither of which fsyncs before it acks. Eddy runs each
 *   scenario once per level of `eddyAcks` (by default `leader` and `durable`, fsync before the
 *   ack), each result with its own ratios to the peers.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  eddySystem,
  runScenario,
  withLoads,
  withResources,
  type AckLevel,
  type BrokerBenchOptions,
  type LatencySummary,
  type LoadParams,
  type ProgressListener,
  type Scenario,
  type ScenarioResult,
} from './broker.bench.js';
import {
  natsSystem,
  redisAofSystem,
  redisSystem,
  type PeerDescription,
  type PeerSettings,
  type PeerSystem,
} from './peers/peer-systems.js';
import { describeDisk } from './disk.js';

/** The systems `--peers` may name, in their default order. */
export const compareSystems = ['eddy', 'nats', 'redis', 'redis-aof'] as const;
export type CompareSystem = (typeof compareSystems)[number];
export type PeerName = Exclude<CompareSystem, 'eddy'>;

/** The scenarios `--scenario` may name. */
export const compareScenarioNames = ['publish-throughput', 'publish-latency', 'e2e-latency'] as const;
export type CompareScenarioName = (typeof compareScenarioNames)[number];

/** Every Eddy figure divided by the peer's (events/s above 1 and latencies below 1 favour Eddy). */
export interface Ratios {
  readonly eventsPerSec: number | null;
  readonly latencyMs?: { readonly [K in keyof LatencySummary]: number | null };
}

export interface CompareResult extends ScenarioResult {
  /** The system measured: `eddy` or a peer. */
  readonly peer: CompareSystem;
  /** What an ack of this system stands for. */
  readonly durability: string;
  /** Eddy only: its figures over each peer's, from the same scenario of the same run. */
  readonly ratioTo?: Partial<Record<PeerName, Ratios>>;
  /** Why the scenario failed against this system (its figures are then 0 and mean nothing). */
  readonly failed?: string;
}

/** The first JSON line of a run: where and what was measured. */
export interface CompareRunInfo {
  readonly name: 'compare-run';
  readonly startedAt: string;
  readonly commit: string | null;
  readonly cpuModel: string;
  readonly cores: number;
  /** The disk the brokers' data dirs were on (`describeDisk`). */
  readonly disk: string;
  readonly node: string;
  readonly systems: Partial<Record<CompareSystem, PeerDescription>>;
}

export interface CompareOptions {
  readonly systems: readonly CompareSystem[];
  /** Eddy runs every scenario once per level, in this order. */
  readonly eddyAcks: readonly AckLevel[];
  readonly bench: BrokerBenchOptions;
  readonly peers: PeerSettings;
}

/**
 * Scenario × event size × rate, in that order, throughput once per size; then, with `loads`,
 * each of them once per publisher count and key count (0: unkeyed). Without `loads` the
 * scenarios leave both to the options (`publishers`) and publish unkeyed.
 */
export function compareScenarios(
  names: readonly CompareScenarioName[],
  eventBytes: readonly number[],
  rates: readonly number[],
  ack: AckLevel,
  loads?: { readonly publishers: readonly number[]; readonly keys: readonly number[] },
): Scenario[] {
  const scenarios = names.flatMap((name) =>
    eventBytes.flatMap((bytes): Scenario[] =>
      name === 'publish-throughput'
        ? [{ name, eventBytes: bytes, ack }]
        : rates.map((rate) => ({ name, eventBytes: bytes, ack, rate })),
    ),
  );
  return loads === undefined ? scenarios : withLoads(scenarios, loads.publishers, loads.keys);
}

const ratio = (eddy: number | undefined, peer: number | undefined): number | null =>
  eddy === undefined || peer === undefined || peer === 0 ? null : Math.round((eddy / peer) * 1000) / 1000;

/** Eddy's figures over a peer's of the same scenario. */
export function ratios(eddy: ScenarioResult, peer: ScenarioResult): Ratios {
  const latency = eddy.latencyMs;
  const other = peer.latencyMs;
  return {
    eventsPerSec: ratio(eddy.eventsPerSec, peer.eventsPerSec),
    ...(latency === undefined || other === undefined
      ? {}
      : {
          latencyMs: {
            p50: ratio(latency.p50, other.p50),
            p95: ratio(latency.p95, other.p95),
            p99: ratio(latency.p99, other.p99),
            p999: ratio(latency.p999, other.p999),
            max: ratio(latency.max, other.max),
          },
        }),
  };
}

/** Eddy's result with its ratio to each peer's result (peers' results pass through unchanged). */
export function withRatios(eddy: CompareResult, peers: readonly CompareResult[]): CompareResult {
  if (eddy.failed !== undefined) return eddy;
  const entries = peers
    .filter((result) => result.peer !== 'eddy' && result.failed === undefined)
    .map((result) => [result.peer, ratios(eddy, result)] as const);
  return entries.length === 0 ? eddy : { ...eddy, ratioTo: Object.fromEntries(entries) };
}

/** A result in the JSON-line order: the figures first, then the detail. */
export function compareResult(
  peer: CompareSystem,
  durability: string,
  result: ScenarioResult<LoadParams & object>,
): CompareResult {
  const { name, params, eventsPerSec, mbPerSec, latencyMs, ...rest } = result;
  return {
    name,
    params,
    peer,
    eventsPerSec,
    mbPerSec,
    ...(latencyMs === undefined ? {} : { latencyMs }),
    durability,
    ...rest,
  };
}

export function eddyDurability(ack: AckLevel): string {
  return ack === 'durable'
    ? 'log on disk: acked after fsync (group commit)'
    : 'log on disk: acked once appended, fsync within 50 ms (flush: interval, flush.ms 50)';
}

function systemOf(name: PeerName, settings: PeerSettings): PeerSystem {
  switch (name) {
    case 'nats':
      return natsSystem(settings);
    case 'redis':
      return redisSystem(settings);
    case 'redis-aof':
      return redisAofSystem(settings);
  }
}

const here = path.dirname(fileURLToPath(import.meta.url));

/** The commit checked out in the repository holding this file, read from .git (null if none). */
export function checkedOutCommit(from: string = path.join(here, '..', '..')): string | null {
  try {
    let dir = path.resolve(from);
    while (!fs.existsSync(path.join(dir, '.git'))) {
      const parent = path.dirname(dir);
      if (parent === dir) return null;
      dir = parent;
    }
    const git = path.join(dir, '.git');
    const head = fs.readFileSync(path.join(git, 'HEAD'), 'utf8').trim();
    const ref = /^ref: (.+)$/.exec(head)?.[1];
    if (ref === undefined) return head.slice(0, 12);
    const loose = path.join(git, ref);
    if (fs.existsSync(loose)) return fs.readFileSync(loose, 'utf8').trim().slice(0, 12);
    const packed = fs.readFileSync(path.join(git, 'packed-refs'), 'utf8');
    return new RegExp(`^([0-9a-f]{40}) ${ref}$`, 'm').exec(packed)?.[1]?.slice(0, 12) ?? null;
  } catch {
    return null;
  }
}

/** The version in the package.json above this file. */
function eddyVersion(): string {
  for (let dir = here; path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file))
      return (JSON.parse(fs.readFileSync(file, 'utf8')) as { version?: string }).version ?? '?';
  }
  return '?';
}

/** Checks every peer is there (throwing before anything runs if one is not) and describes them. */
export async function describeSystems(options: CompareOptions): Promise<CompareRunInfo> {
  const systems: Partial<Record<CompareSystem, PeerDescription>> = {};
  for (const name of options.systems) {
    systems[name] =
      name === 'eddy'
        ? {
            server: `eddy ${eddyVersion()}`,
            durability:
              options.eddyAcks.length === 1
                ? eddyDurability(options.eddyAcks[0] as AckLevel)
                : options.eddyAcks.map((ack) => `\`${ack}\`: ${eddyDurability(ack)}`).join('; '),
          }
        : await systemOf(name, options.peers).describe();
  }
  return {
    name: 'compare-run',
    startedAt: new Date().toISOString(),
    commit: checkedOutCommit(),
    cpuModel: os.cpus()[0]?.model.trim() ?? '?',
    cores: os.cpus().length,
    disk: describeDisk(options.bench.tmpDir),
    node: process.version,
    systems,
  };
}

/**
 * The line of a scenario that failed against `peer` (a client error, a server closing the
 * connection): the run goes on with the next system, and the failure is reported, not hidden.
 */
export function failedResult(
  peer: CompareSystem,
  durability: string,
  scenario: Scenario,
  options: BrokerBenchOptions,
  error: unknown,
): CompareResult {
  return {
    name: scenario.name,
    params: {
      eventBytes: scenario.eventBytes,
      publishers: scenario.publishers ?? options.publishers,
      ...(scenario.rate === undefined ? { inFlight: options.inFlight } : { rate: scenario.rate }),
      ...(scenario.keys === undefined || scenario.keys === 0 ? {} : { keys: scenario.keys }),
      ...(peer === 'eddy' ? { ack: scenario.ack } : {}),
    },
    peer,
    eventsPerSec: 0,
    mbPerSec: 0,
    durability,
    events: 0,
    durationMs: 0,
    failed: error instanceof Error ? error.message : String(error),
  };
}

/** Told when a scenario starts against a system, and then about once a second while it publishes. */
export interface CompareProgress {
  scenario(step: number, steps: number, system: CompareSystem, scenario: Scenario): ProgressListener;
}

/**
 * Runs every scenario against every system of `options.systems` in turn (Eddy once per ack level)
 * and yields the results as they come; Eddy's wait for the peers of their scenario, to carry
 * their ratios to them.
 */
export async function* runComparison(
  scenarios: readonly Scenario[],
  options: CompareOptions,
  info: CompareRunInfo,
  progress: CompareProgress | null = null,
): AsyncGenerator<CompareResult> {
  if (options.bench.profileDir !== null) fs.mkdirSync(options.bench.profileDir, { recursive: true });
  // Every system once per scenario, Eddy once per ack level.
  const runs = options.systems.flatMap((name): { name: CompareSystem; ack: AckLevel | null }[] =>
    name === 'eddy' ? options.eddyAcks.map((ack) => ({ name, ack })) : [{ name, ack: null }],
  );
  const steps = scenarios.length * runs.length;
  yield* withResources(async function* (resources) {
    let step = 0;
    for (const [index, scenario] of scenarios.entries()) {
      const eddy: CompareResult[] = [];
      const peers: CompareResult[] = [];
      for (const { name, ack } of runs) {
        step++;
        const run = ack === null ? scenario : { ...scenario, ack };
        const listener = progress?.scenario(step, steps, name, run) ?? null;
        const durability = ack === null ? (info.systems[name]?.durability ?? '') : eddyDurability(ack);
        const system = name === 'eddy' ? eddySystem : systemOf(name, options.peers);
        let result: CompareResult;
        try {
          result = compareResult(
            name,
            durability,
            await runScenario<object>(system, run, index, options.bench, resources, listener),
          );
        } catch (error) {
          result = failedResult(name, durability, run, options.bench, error);
        }
        if (name === 'eddy') eddy.push(result);
        else {
          peers.push(result);
          yield result;
        }
      }
      for (const result of eddy) yield withRatios(result, peers);
    }
  });
}
