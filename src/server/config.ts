/** Settings of a broker node, with the defaults `eddy serve` and `startBroker` use. */
import { checkTopicDefaults, type TopicConfig } from '../broker/index.js';

export interface BrokerConfig {
  /** TCP port; 0 picks a free one. Default 7070. */
  readonly port?: number;
  /** Interface to listen on. Default 127.0.0.1: there is no authentication yet. */
  readonly host?: string;
  /** Where topics and their logs live. Default ./eddy-data. */
  readonly dataDir?: string;
  /** Largest WebSocket frame or HTTP body accepted. Default 8 MiB. */
  readonly maxFrameBytes?: number;
  /** Most events in one batch. Default 10,000. */
  readonly maxBatchEvents?: number;
  /** Unacknowledged publishes one connection may have. Default 1,024. */
  readonly maxInFlight?: number;
  /** Bytes queued for one slow WebSocket before the broker stops sending to it. Default 8 MiB. */
  readonly maxBufferedBytes?: number;
  /** Bytes queued for one WebSocket before it is cut off as a slow consumer. Default 64 MiB. */
  readonly slowConsumerBytes?: number;
  /** How long deliveries may wait on a socket above maxBufferedBytes before it is cut off. Default 30 s. */
  readonly slowConsumerMs?: number;
  /** WebSocket connections served at once; more are refused with 503 before the upgrade. Default 10,000. */
  readonly maxConnections?: number;
  /** How long a new connection may take to send Hello before it is closed (HANDSHAKE_REQUIRED). Default 10 s. */
  readonly helloTimeoutMs?: number;
  /** How often each partition applies retention (retention.ms, retention.bytes) and compaction. Default 60 s. */
  readonly retentionCheckIntervalMs?: number;
  /** Settings of topics created without them. */
  readonly topicDefaults?: Partial<TopicConfig>;
  /** Name sent in Welcome. Default "eddy". */
  readonly serverName?: string;
  /** How long shutdown waits for clients to disconnect after being asked to. Default 2 s. */
  readonly shutdownGraceMs?: number;
  /** How long start-up keeps trying a port that is still in use. Default 0 (fail at once). */
  readonly listenRetryMs?: number;
  /**
   * Partition worker threads; 0 serves every partition on the main thread.
   * Default 0: measured faster on 2 cores (docs/performance.md).
   */
  readonly workers?: number;
  /**
   * Events a second one client may publish: one WebSocket connection, or one
   * address on the HTTP API. Over it, batches are refused with QUOTA_EXCEEDED
   * (retriable) and nothing of them is stored. Default 0: unlimited.
   */
  readonly publishQuotaEventsPerSecond?: number;
  /** The same in bytes of event blocks as stored (compressed, when sent compressed). Default 0: unlimited. */
  readonly publishQuotaBytesPerSecond?: number;
  /** How much a client may publish at once after being idle: this many ms worth of its quota. Default 1,000. */
  readonly publishQuotaBurstMs?: number;
  /**
   * Wall time one call into a WASM filter or transform may take before its
   * thread is terminated and it is quarantined. Default 50 (RELIABILITY.md W);
   * a batch's event-by-event calls together get max(200, this).
   */
  readonly filterCallTimeoutMs?: number;
  /**
   * Nice value (0–19) of the WASM filter threads on Linux: guests yield the
   * CPU to the threads serving everyone when cores are short. Default 0.
   */
  readonly filterThreadNice?: number;
}

export type ResolvedConfig = Required<Omit<BrokerConfig, 'topicDefaults'>> & {
  readonly topicDefaults: Partial<TopicConfig>;
};

export function resolveConfig(config: BrokerConfig): ResolvedConfig {
  const resolved: ResolvedConfig = {
    port: config.port ?? 7070,
    host: config.host ?? '127.0.0.1',
    dataDir: config.dataDir ?? './eddy-data',
    maxFrameBytes: config.maxFrameBytes ?? 8 * 1024 * 1024,
    maxBatchEvents: config.maxBatchEvents ?? 10_000,
    maxInFlight: config.maxInFlight ?? 1024,
    maxBufferedBytes: config.maxBufferedBytes ?? 8 * 1024 * 1024,
    slowConsumerBytes: config.slowConsumerBytes ?? 64 * 1024 * 1024,
    slowConsumerMs: config.slowConsumerMs ?? 30_000,
    maxConnections: config.maxConnections ?? 10_000,
    helloTimeoutMs: config.helloTimeoutMs ?? 10_000,
    retentionCheckIntervalMs: config.retentionCheckIntervalMs ?? 60_000,
    topicDefaults: config.topicDefaults ?? {},
    serverName: config.serverName ?? 'eddy',
    shutdownGraceMs: config.shutdownGraceMs ?? 2000,
    listenRetryMs: config.listenRetryMs ?? 0,
    workers: config.workers ?? 0,
    publishQuotaEventsPerSecond: config.publishQuotaEventsPerSecond ?? 0,
    publishQuotaBytesPerSecond: config.publishQuotaBytesPerSecond ?? 0,
    publishQuotaBurstMs: config.publishQuotaBurstMs ?? 1000,
    filterCallTimeoutMs: config.filterCallTimeoutMs ?? 50,
    filterThreadNice: config.filterThreadNice ?? 0,
  };
  const integer = (name: keyof ResolvedConfig, min: number, max: number): void => {
    const value = resolved[name];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max)
      throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  };
  integer('port', 0, 65535);
  integer('maxFrameBytes', 1024, 1024 ** 3);
  integer('maxBatchEvents', 1, 1_000_000);
  integer('maxInFlight', 1, 1_000_000);
  integer('maxBufferedBytes', 64 * 1024, 1024 ** 3);
  integer('slowConsumerBytes', 64 * 1024, 4 * 1024 ** 3);
  integer('slowConsumerMs', 10, 3_600_000);
  integer('maxConnections', 1, 1_000_000);
  integer('helloTimeoutMs', 100, 600_000);
  integer('retentionCheckIntervalMs', 100, 86_400_000);
  integer('shutdownGraceMs', 0, 600_000);
  integer('listenRetryMs', 0, 600_000);
  integer('workers', 0, 64);
  integer('publishQuotaEventsPerSecond', 0, 1_000_000_000);
  integer('publishQuotaBytesPerSecond', 0, 1024 ** 4);
  integer('publishQuotaBurstMs', 1, 600_000);
  integer('filterCallTimeoutMs', 1, 60_000);
  integer('filterThreadNice', 0, 19);
  checkTopicDefaults(resolved.topicDefaults);
  if (resolved.slowConsumerBytes < resolved.maxBufferedBytes)
    throw new RangeError('slowConsumerBytes must be at least maxBufferedBytes');
  return resolved;
}
