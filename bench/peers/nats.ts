/**
 * NATS JetStream as a peer of the broker benchmark, through the `nats` Node client.
 *
 * - Broker side (the benchmark's process): a stream with file storage, one replica and one
 *   subject, created fresh for each scenario and deleted after it. Streams a dead benchmark
 *   left behind (`EDDY_BENCH_<pid>_<n>`, that pid no longer running) are deleted first; each
 *   stream also ages its messages out after `STREAM_MAX_AGE_MS`, should nobody delete it.
 * - Publisher (a generator process): `js.publish(subject, data)`, the async publish whose promise
 *   resolves with the stream's `PubAck` (a keyed event goes to `<subject>.<key>`, which the stream
 *   also holds); the generator keeps a window of unresolved publishes
 *   (`inFlight` events in the closed loop, up to a second of events in the open loop), as it does
 *   for Eddy.
 * - Consumer: an ordered pull consumer (`js.consumers.get(stream, {deliver_policy: new})`,
 *   `consume` with a callback and `max_messages` per pull), created before publishing starts.
 */
import fs from 'node:fs';
import {
  connect,
  DeliverPolicy,
  StorageType,
  type ConnectionOptions,
  type ConsumerMessages,
  type NatsConnection,
} from 'nats';
import type { LoadTarget } from '../generator-core.js';

export interface NatsConnectionSpec {
  readonly kind: 'nats';
  /** `host:port` of the server. */
  readonly servers: string;
  readonly stream: string;
  readonly subject: string;
  /** Consumer: messages per pull (`max_messages`). */
  readonly consumerBatch: number;
}

const STREAM_PREFIX = 'EDDY_BENCH_';
const STREAM_MAX_AGE_MS = 15 * 60_000;
/** Far beyond any scenario's drain time: an ack the broker is slow with counts as late, not as failed. */
const PUBLISH_TIMEOUT_MS = 120_000;

const connectionOptions = (servers: string, name: string): ConnectionOptions => ({
  servers,
  name,
  // A benchmark measures one connection; a reconnect would hide an outage behind a pause.
  reconnect: false,
  timeout: 5000,
});

/** Stream and subject names of scenario `index` of this benchmark process. */
export function natsNames(index: number): { readonly stream: string; readonly subject: string } {
  return { stream: `${STREAM_PREFIX}${process.pid}_${index}`, subject: `eddy-bench.${process.pid}.${index}` };
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The server's version, or a TypeError naming the address when it cannot be reached or has no JetStream. */
export async function natsServerVersion(servers: string): Promise<string> {
  let nc: NatsConnection;
  try {
    nc = await connect(connectionOptions(servers, 'eddy-bench-check'));
  } catch (error) {
    throw new Error(`nats: cannot connect to ${servers}: ${(error as Error).message}`, { cause: error });
  }
  try {
    if (nc.info?.jetstream !== true)
      throw new Error(`nats: ${servers} has JetStream disabled (nats-server -js)`);
    return nc.info.version;
  } finally {
    await nc.close();
  }
}

/**
 * Creates the stream of scenario `index` (file storage, deleting leftovers of dead benchmarks
 * first); the returned function deletes it.
 */
export async function createNatsStream(
  servers: string,
  index: number,
): Promise<{
  readonly spec: Omit<NatsConnectionSpec, 'consumerBatch'>;
  readonly remove: () => Promise<void>;
}> {
  const nc = await connect(connectionOptions(servers, 'eddy-bench-admin'));
  try {
    const jsm = await nc.jetstreamManager();
    for await (const name of jsm.streams.names()) {
      const pid = Number(/^EDDY_BENCH_(\d+)_\d+$/.exec(name)?.[1]);
      if (Number.isInteger(pid) && pid !== process.pid && !running(pid)) await jsm.streams.delete(name);
    }
    const { stream, subject } = natsNames(index);
    await jsm.streams.add({
      name: stream,
      // Keyed events go to `<subject>.<key>`: a subject per key, the JetStream way to key a stream.
      subjects: [subject, `${subject}.*`],
      storage: StorageType.File,
      num_replicas: 1,
      max_age: STREAM_MAX_AGE_MS * 1_000_000, // nanoseconds
    });
    return {
      spec: { kind: 'nats', servers, stream, subject },
      async remove() {
        const admin = await connect(connectionOptions(servers, 'eddy-bench-admin'));
        try {
          await (await admin.jetstreamManager()).streams.delete(stream);
        } finally {
          await admin.close();
        }
      },
    };
  } finally {
    await nc.close();
  }
}

/** The generator's side: one connection, publishing to or consuming from the scenario's stream. */
export async function openNats(
  spec: NatsConnectionSpec,
  role: 'publisher' | 'consumer',
  fail: (error: unknown) => void,
): Promise<LoadTarget> {
  const nc = await connect(connectionOptions(spec.servers, `eddy-bench-${role}`));
  let closing = false;
  void nc.closed().then((error) => {
    if (!closing) fail(error ?? new Error('nats: the connection closed'));
  });
  const js = nc.jetstream();
  let messages: ConsumerMessages | null = null;
  return {
    publish: (data, key) =>
      js.publish(key === null ? spec.subject : `${spec.subject}.${key}`, data, {
        timeout: PUBLISH_TIMEOUT_MS,
      }),
    isDisconnected: () => nc.isClosed(),
    countsDeliveries: false,
    async subscribe(onData) {
      const consumer = await js.consumers.get(spec.stream, { deliver_policy: DeliverPolicy.New });
      messages = await consumer.consume({
        max_messages: spec.consumerBatch,
        callback: (message) => onData(message.data),
      });
      // The ordered consumer is made on the server by `consume`; asking for its info waits for it.
      await consumer.info();
    },
    async close() {
      closing = true;
      // The consumer first: an ordered consumer whose connection closes under it retries forever.
      await messages?.close();
      await nc.close();
    },
  };
}

/** The pid of the process listening on 127.0.0.1:`port` (TCP), from /proc, or undefined. */
export function pidListeningOn(port: number): number | undefined {
  try {
    const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
    const inodes = new Set<string>();
    for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
      if (!fs.existsSync(table)) continue;
      for (const line of fs.readFileSync(table, 'utf8').split('\n').slice(1)) {
        const fields = line.trim().split(/\s+/);
        // local_address is field 1 (ADDR:PORT), st field 3 (0A = LISTEN), inode field 9.
        if (fields[1]?.endsWith(`:${hexPort}`) && fields[3] === '0A' && fields[9] !== undefined)
          inodes.add(`socket:[${fields[9]}]`);
      }
    }
    if (inodes.size === 0) return undefined;
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let fds: string[];
      try {
        fds = fs.readdirSync(`/proc/${entry}/fd`);
      } catch {
        continue;
      }
      for (const fd of fds) {
        try {
          if (inodes.has(fs.readlinkSync(`/proc/${entry}/fd/${fd}`))) return Number(entry);
        } catch {
          // The descriptor closed meanwhile.
        }
      }
    }
  } catch {
    // No /proc: the broker's CPU goes unreported.
  }
  return undefined;
}
