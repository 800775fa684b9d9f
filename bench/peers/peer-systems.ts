/**
 * The peers of `eddy bench compare` as systems that `runScenario` drives exactly as it drives
 * Eddy: a fresh broker side per scenario (a stream, a key, a server), generators forked from
 * `peer-generator.js`, the same load and the same figures.
 */
import { execFileSync, fork } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  exited,
  watchdogUrl,
  type BenchSystem,
  type PreparedSystem,
  type Resources,
  type Scenario,
} from '../broker.bench.js';
import type { LoadPublisherSpec } from '../generator-core.js';
import { createNatsStream, natsServerVersion, pidListeningOn } from './nats.js';
import type { PeerConnectionSpec, PeerGeneratorSpec } from './peer-generator.js';
import { createRedisStream, redisDurability, redisServerFacts } from './redis.js';
import type { FromRedisKeeper } from './redis-server.js';

const here = path.dirname(fileURLToPath(import.meta.url));
/** Compiled paths: this file runs from dist/bench/peers/. */
const peerGeneratorPath = path.join(here, 'peer-generator.js');
const redisKeeperPath = path.join(here, 'redis-server.js');

const KEEPER_START_TIMEOUT_MS = 15_000;
const KEEPER_STOP_TIMEOUT_MS = 15_000;

export interface PeerSettings {
  /** `host:port` of NATS with JetStream. */
  readonly natsServers: string;
  /** The machine's Redis. */
  readonly redisPort: number;
  /** Consumers: messages per pull (NATS) or entries per read (Redis). */
  readonly consumerBatch: number;
}

export const defaultPeerSettings: PeerSettings = {
  natsServers: '127.0.0.1:4222',
  redisPort: 6379,
  consumerBatch: 1024,
};

/** A peer's settings of a scenario, reported in its `params`. */
export interface PeerParams {
  /** e2e-latency: messages per pull or per read. */
  readonly consumerBatch?: number;
}

/** What a peer is, found out before the comparison starts (and failing early if it is not there). */
export interface PeerDescription {
  /** Server name and version, e.g. `nats-server 2.9.10`. */
  readonly server: string;
  /** The durability its acks stand for, in the words of the table. */
  readonly durability: string;
}

export interface PeerSystem extends BenchSystem<PeerParams> {
  describe(): Promise<PeerDescription>;
}

function peerPrepared(
  scenario: Scenario,
  settings: PeerSettings,
  server: { readonly pid: number | undefined; readonly startedForScenario: boolean },
  peer: PeerConnectionSpec,
  close: () => Promise<void>,
): PreparedSystem<PeerParams> {
  return {
    serverPid: server.pid,
    serverStartedForScenario: server.startedForScenario,
    params: scenario.name === 'e2e-latency' ? { consumerBatch: settings.consumerBatch } : {},
    publisherSpec: (load: LoadPublisherSpec): PeerGeneratorSpec => ({ ...load, peer }),
    consumerSpec: (): PeerGeneratorSpec => ({ role: 'consumer', peer }),
    close,
  };
}

function onlyPlainScenarios(peer: string, scenario: Scenario): void {
  if (scenario.name === 'group-latency')
    throw new TypeError(`${peer}: group-latency is measured for Eddy only`);
}

export function natsSystem(settings: PeerSettings): PeerSystem {
  const port = Number(settings.natsServers.split(':').at(-1));
  return {
    name: 'nats',
    generatorPath: peerGeneratorPath,
    async describe() {
      return {
        server: `nats-server ${await natsServerVersion(settings.natsServers)}`,
        durability: 'file storage, 1 replica: acked once stored, fsync periodic (not per ack)',
      };
    },
    async prepare(scenario, index) {
      onlyPlainScenarios('nats', scenario);
      const stream = await createNatsStream(settings.natsServers, index);
      return peerPrepared(
        scenario,
        settings,
        { pid: pidListeningOn(port), startedForScenario: false },
        { ...stream.spec, consumerBatch: settings.consumerBatch },
        stream.remove,
      );
    },
  };
}

/** The machine's Redis, whatever it keeps on disk (its configuration says, and the label follows). */
export function redisSystem(settings: PeerSettings): PeerSystem {
  return {
    name: 'redis',
    generatorPath: peerGeneratorPath,
    async describe() {
      const facts = await redisServerFacts(settings.redisPort);
      return { server: `redis-server ${facts.version}`, durability: facts.durability };
    },
    async prepare(scenario, index) {
      onlyPlainScenarios('redis', scenario);
      const facts = await redisServerFacts(settings.redisPort);
      const stream = await createRedisStream(settings.redisPort, index);
      return peerPrepared(
        scenario,
        settings,
        { pid: facts.pid, startedForScenario: false },
        { ...stream.spec, consumerBatch: settings.consumerBatch },
        stream.remove,
      );
    },
  };
}

/** A Redis of the benchmark's own, fresh per scenario: `--appendonly yes --appendfsync everysec --save ''`. */
export function redisAofSystem(settings: PeerSettings): PeerSystem {
  return {
    name: 'redis-aof',
    generatorPath: peerGeneratorPath,
    async describe() {
      let version: string;
      try {
        version =
          /v=(\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))?.[1] ?? '?';
      } catch (error) {
        throw new Error(`redis-aof: cannot run redis-server: ${(error as Error).message}`, { cause: error });
      }
      return {
        server: `redis-server ${version}`,
        durability: redisDurability({ appendonly: 'yes', appendfsync: 'everysec', save: '' }),
      };
    },
    async prepare(scenario, index, _name, options, resources) {
      onlyPlainScenarios('redis-aof', scenario);
      const server = await startOwnRedis(options.tmpDir, resources);
      try {
        const stream = await createRedisStream(server.port, index);
        return peerPrepared(
          scenario,
          settings,
          { pid: server.pid, startedForScenario: true },
          { ...stream.spec, consumerBatch: settings.consumerBatch },
          server.stop,
        );
      } catch (error) {
        await server.stop();
        throw error;
      }
    },
  };
}

/**
 * `redis-server` on a free loopback port with an AOF fsynced every second, in a fresh temp dir
 * under `tmpDir`, kept by a `redis-server.js` child that stops it if this process dies.
 */
export async function startOwnRedis(
  tmpDir: string,
  resources: Resources,
): Promise<{ readonly port: number; readonly pid: number; readonly stop: () => Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(tmpDir, 'eddy-bench-redis-'));
  resources.dirs.add(dir);
  const keeper = resources.track(
    fork(redisKeeperPath, [], {
      execArgv: ['--import', watchdogUrl],
      env: { ...process.env, EDDY_BENCH_ORPHAN_DIR: dir },
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    }),
  );
  let pid: number | null = null;
  const stop = async (): Promise<void> => {
    keeper.kill('SIGTERM');
    if (!(await exited(keeper, KEEPER_STOP_TIMEOUT_MS))) keeper.kill('SIGKILL');
    if (pid !== null) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Stopped by its keeper, as it should be.
      }
      resources.pids.delete(pid);
    }
    fs.rmSync(dir, { recursive: true, force: true });
    resources.dirs.delete(dir);
  };
  try {
    const ready = await new Promise<Extract<FromRedisKeeper, { type: 'ready' }>>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`redis-aof: no server after ${KEEPER_START_TIMEOUT_MS} ms`)),
        KEEPER_START_TIMEOUT_MS,
      );
      keeper.on('message', (message: FromRedisKeeper) => {
        clearTimeout(timer);
        if (message.type === 'ready') resolve(message);
        else reject(new Error(`redis-aof: ${message.message}`));
      });
      keeper.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`redis-aof: its keeper exited (${signal ?? code}) before the server was ready`));
      });
    });
    pid = ready.pid;
    resources.pids.add(pid);
    return { port: ready.port, pid: ready.pid, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
