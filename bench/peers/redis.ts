/**
 * Redis Streams as a peer of the broker benchmark, through the `ioredis` Node client.
 *
 * - Broker side (the benchmark's process): a stream key with a consumer group created at `$`
 *   (`XGROUP CREATE … MKSTREAM`) for each scenario, deleted after it. Keys a dead benchmark left
 *   behind (`eddy-bench:<pid>:<n>`, that pid no longer running) are deleted first, and each key
 *   expires after `KEY_TTL_S` should nobody delete it. Two servers: the machine's (whatever it
 *   persists, read with `CONFIG GET`) and one of the benchmark's own with an append-only file
 *   fsynced every second (`redis-server.ts`).
 * - Publisher (a generator process): `XADD key * data <event data>` (keyed: `XADD key * key <k>
 *   data <event data>`) with ioredis' auto-pipelining,
 *   so every XADD issued in one turn of the event loop goes out in one write (pipelined XADD);
 *   the promise of each resolves with the entry's id once Redis has appended it.
 * - Consumer: a second connection reading the group (`XREADGROUP GROUP g c COUNT n BLOCK 100
 *   STREAMS key >`), acknowledging each batch with one `XACK` sent before the next read.
 */
import { Redis } from 'ioredis';
import type { LoadTarget } from '../generator-core.js';

export interface RedisConnectionSpec {
  readonly kind: 'redis';
  readonly port: number;
  readonly key: string;
  readonly group: string;
  /** Consumer: entries per read (`COUNT`). */
  readonly consumerBatch: number;
}

const HOST = '127.0.0.1';
const KEY_PREFIX = 'eddy-bench:';
const KEY_TTL_S = 15 * 60;
const GROUP = 'eddy-bench';
const FIELD = 'data';
/** Keyed scenarios: the key rides in a field of its own, before the data (a stream has no partitions to route by). */
const KEY_FIELD = 'key';
const BLOCK_MS = 100;

async function connected(port: number, name: string, autoPipelining = false): Promise<Redis> {
  const redis = new Redis({
    host: HOST,
    port,
    connectionName: name,
    lazyConnect: true,
    // A benchmark measures one connection: no retries, no queueing while disconnected.
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    enableAutoPipelining: autoPipelining,
  });
  // Connection errors also reject `connect()` or the command under way; without a listener
  // ioredis would print each of them.
  redis.on('error', () => undefined);
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new Error(`redis: cannot connect to ${HOST}:${port}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return redis;
}

function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What a Redis server keeps on disk, from its configuration, and its version and pid. */
export interface RedisServerFacts {
  readonly version: string;
  readonly pid: number | undefined;
  readonly durability: string;
}

/** Describes a server's persistence in the words of the comparison table. */
export function redisDurability(config: {
  readonly appendonly: string;
  readonly appendfsync: string;
  readonly save: string;
}): string {
  const aof =
    config.appendonly === 'yes'
      ? config.appendfsync === 'always'
        ? 'AOF, fsync before each reply'
        : config.appendfsync === 'everysec'
          ? 'AOF, fsync every second (acked before it)'
          : 'AOF, fsync left to the OS'
      : null;
  const snapshots = config.save.trim() === '' ? null : `RDB snapshots (save ${config.save.trim()})`;
  if (aof === null && snapshots === null) return 'memory only (no AOF, no snapshots)';
  return [aof, snapshots].filter((part) => part !== null).join(' + ');
}

export async function redisServerFacts(port: number): Promise<RedisServerFacts> {
  const redis = await connected(port, 'eddy-bench-check');
  try {
    const info = await redis.info('server');
    const field = (name: string): string | undefined =>
      new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
    const config = async (name: string): Promise<string> => {
      const reply = (await redis.config('GET', name)) as string[];
      return reply[1] ?? '';
    };
    const pid = Number(field('process_id'));
    return {
      version: field('redis_version') ?? '?',
      pid: Number.isInteger(pid) && pid > 0 ? pid : undefined,
      durability: redisDurability({
        appendonly: await config('appendonly'),
        appendfsync: await config('appendfsync'),
        save: await config('save'),
      }),
    };
  } finally {
    redis.disconnect();
  }
}

/**
 * Creates the stream and consumer group of scenario `index` (deleting leftovers of dead
 * benchmarks first); the returned function deletes the key.
 */
export async function createRedisStream(
  port: number,
  index: number,
): Promise<{
  readonly spec: Omit<RedisConnectionSpec, 'consumerBatch'>;
  readonly remove: () => Promise<void>;
}> {
  const redis = await connected(port, 'eddy-bench-admin');
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${KEY_PREFIX}*`, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        const pid = Number(key.split(':')[1]);
        if (Number.isInteger(pid) && pid !== process.pid && !running(pid)) await redis.del(key);
      }
    } while (cursor !== '0');
    const key = `${KEY_PREFIX}${process.pid}:${index}`;
    await redis.del(key);
    await redis.xgroup('CREATE', key, GROUP, '$', 'MKSTREAM');
    await redis.expire(key, KEY_TTL_S);
    return {
      spec: { kind: 'redis', port, key, group: GROUP },
      async remove() {
        const admin = await connected(port, 'eddy-bench-admin');
        try {
          await admin.del(key);
        } finally {
          admin.disconnect();
        }
      },
    };
  } finally {
    redis.disconnect();
  }
}

/** The generator's side: XADD through an auto-pipelined connection, or read the group. */
export async function openRedis(
  spec: RedisConnectionSpec,
  role: 'publisher' | 'consumer',
  fail: (error: unknown) => void,
): Promise<LoadTarget> {
  const redis = await connected(spec.port, `eddy-bench-${role}`, true);
  let closing = false;
  redis.on('end', () => {
    if (!closing) fail(new Error('redis: the connection closed'));
  });
  let reader: Redis | null = null;
  return {
    publish: (data, key) => {
      const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      return key === null
        ? redis.xadd(spec.key, '*', FIELD, bytes)
        : redis.xadd(spec.key, '*', KEY_FIELD, key, FIELD, bytes);
    },
    isDisconnected: () => redis.status === 'end',
    countsDeliveries: false,
    async subscribe(onData) {
      const blocking = await connected(spec.port, 'eddy-bench-consumer-read');
      reader = blocking;
      const consumer = `consumer-${process.pid}`;
      // The group exists already at `$`: every entry added after it is read.
      void (async () => {
        while (!closing) {
          const reply = await blocking.xreadgroupBuffer(
            'GROUP',
            spec.group,
            consumer,
            'COUNT',
            spec.consumerBatch,
            'BLOCK',
            BLOCK_MS,
            'STREAMS',
            spec.key,
            '>',
          );
          for (const [, entries] of (reply ?? []) as [Buffer, [Buffer, Buffer[]][]][]) {
            const ids: Buffer[] = [];
            for (const [id, fields] of entries) {
              ids.push(id);
              // `data` is the last field: the only one, or after the key.
              const data = fields[fields.length - 1];
              if (data !== undefined) onData(data);
            }
            // Sent before the next read, on the same connection: one round trip per batch.
            if (ids.length > 0) void blocking.xack(spec.key, spec.group, ...ids).catch(fail);
          }
        }
      })().catch((error: unknown) => {
        if (!closing) fail(error);
      });
    },
    async close() {
      closing = true;
      reader?.disconnect();
      await redis.quit().catch(() => undefined);
    },
  };
}
