/**
 * A broker node: the broker's topics and logs, the WebSocket gateway and the
 * HTTP API on one uWebSockets.js app and one port. Partitions are served on
 * the main thread (`workers: 0`) or by partition worker threads fed through
 * the rings of `src/workers/`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FilterRegistry, defaultFilterLimits } from '../filters/index.js';
import { Broker, DeadLetterOffice, RoutingRules, TopicTransforms } from '../broker/index.js';
import { resolveConfig, type BrokerConfig } from './config.js';
import { Gateway } from './gateway.js';
import { attachFiltersApi } from './filters-api.js';
import { attachSubscriptionsApi } from './subscriptions-api.js';
import { attachDeadLettersApi } from './dead-letters-api.js';
import { attachRequestReplyApi } from './request-reply-api.js';
import { attachRoutingApi } from './routing-api.js';
import { attachTransformsApi } from './transforms-api.js';
import { PublishTransforms } from './publish-transforms.js';
import { attachHttpApi } from './http-api.js';
import { WasmFilters } from './wasm-filters.js';
import { attachSubscriptionFilterApi } from './subscription-filter-api.js';
import { partitionHost } from '../workers/index.js';
import { BrokerMetrics } from './metrics.js';
import {
  App,
  assertNativeUws,
  us_listen_socket_close,
  us_socket_local_port,
  type TemplatedApp,
  type us_listen_socket,
} from './uws.js';

export interface RunningBroker {
  /** Base URL of the HTTP API; the WebSocket endpoint is `${url}/v1/ws` with the ws scheme. */
  readonly url: string;
  readonly port: number;
  /** Stops accepting, closes connections, flushes and closes every partition. Idempotent. */
  close(): Promise<void>;
}

/**
 * Listens, retrying for up to `retryMs`: this build of uWebSockets.js does not
 * set SO_REUSEADDR, so a port whose previous owner closed connections itself
 * stays unusable while they sit in TIME_WAIT (up to a minute on Linux).
 */
async function listen(
  app: TemplatedApp,
  host: string,
  port: number,
  retryMs: number,
): Promise<us_listen_socket> {
  const deadline = Date.now() + retryMs;
  for (;;) {
    const socket = await new Promise<us_listen_socket | false>((resolve) => app.listen(host, port, resolve));
    if (socket) return socket;
    if (Date.now() >= deadline) throw new Error(`cannot listen on ${host}:${port} (in use, or not allowed)`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

export async function startBroker(options: BrokerConfig = {}): Promise<RunningBroker> {
  assertNativeUws();
  const config = resolveConfig(options);
  fs.mkdirSync(config.dataDir, { recursive: true });
  const broker = await Broker.open({
    dataDir: config.dataDir,
    topicDefaults: config.topicDefaults,
    retentionCheckIntervalMs: config.retentionCheckIntervalMs,
    partitions: partitionHost(config.workers),
  });
  let filters: FilterRegistry;
  let routing: RoutingRules;
  let topicTransforms: TopicTransforms;
  try {
    filters = await FilterRegistry.open(path.join(config.dataDir, 'filters'));
    routing = await RoutingRules.open(config.dataDir);
    topicTransforms = await TopicTransforms.open(config.dataDir);
    // A crash between a topic's deletion and its transform's may leave the file: it must not pass to a new topic of that name.
    const topics = new Set(broker.listTopics().map((topic) => topic.name));
    for (const { topic } of topicTransforms.list())
      if (!topics.has(topic)) await topicTransforms.delete(topic);
    broker.useRouting(routing);
  } catch (error) {
    await broker.close();
    throw error;
  }
  const metrics = new BrokerMetrics();
  metrics.watchSubscriptions(() => broker.subscriptions.list());
  metrics.watchPartitions(() => broker.failedPartitions());
  metrics.watchRouting(() => routing.stats());
  const wasmFilters = new WasmFilters(
    filters,
    broker,
    {
      callTimeoutMs: config.filterCallTimeoutMs,
      batchTimeoutMs: Math.max(defaultFilterLimits.batchTimeoutMs, config.filterCallTimeoutMs),
    },
    config.filterThreadNice,
  );
  const transforms = new PublishTransforms(topicTransforms, wasmFilters);
  broker.useTransforms(transforms);
  const gateway = new Gateway(broker, config, metrics, wasmFilters);
  const deadLetters = new DeadLetterOffice(config.dataDir, {
    listTopics: () => broker.listTopics(),
    describeTopic: (name) => broker.describeTopic(name),
    fetch: (topic, partition, offset, maxBytes) => broker.fetch(topic, partition, offset, maxBytes),
    publish: async (topic, target, events, meta) => {
      const published = await broker.publish(topic, target, events, meta);
      gateway.notifyAppended(topic); // a redrive: the target's readers are woken as for any publish
      return published;
    },
    deadLetterTopics: () => broker.subscriptions.list().flatMap((s) => s.config['dead.letter.topic'] ?? []),
  });
  gateway.onTopicDeleted = (topic) => deadLetters.forget(topic);
  let accepting = true;
  const app = App();
  gateway.attach(app);
  attachFiltersApi(app, filters, config.maxFrameBytes, () => [
    ...topicTransforms.list().map(({ topic, transform }) => ({ ref: transform, by: `topic ${topic}` })),
    ...routing
      .list()
      .flatMap(({ id, rules }) =>
        rules.flatMap(({ transform }) =>
          transform === null ? [] : [{ ref: transform, by: `routing rule set ${id}` }],
        ),
      ),
  ]);
  attachSubscriptionsApi(app, broker, wasmFilters, config.maxFrameBytes);
  attachSubscriptionFilterApi(app, broker, wasmFilters, config.maxFrameBytes, (name) =>
    gateway.filterSwapped(name),
  );
  attachDeadLettersApi(app, deadLetters, config.maxFrameBytes);
  attachRoutingApi(app, routing, broker, config.maxFrameBytes, (ref, owner) => transforms.pin(ref, owner));
  attachTransformsApi(app, topicTransforms, transforms, broker, config.maxFrameBytes);
  attachRequestReplyApi(app, broker, config.maxFrameBytes, {
    appended: (topic) => gateway.notifyAppended(topic),
    isReady: () => accepting,
  });
  attachHttpApi(app, broker, config, metrics, {
    appended: (topic) => gateway.notifyAppended(topic),
    deleted: (topic) => gateway.topicDeleted(topic),
    isReady: () => accepting,
  });

  let listenSocket: us_listen_socket;
  try {
    listenSocket = await listen(app, config.host, config.port, config.listenRetryMs);
  } catch (error) {
    await wasmFilters.close();
    await broker.close();
    throw error;
  }
  const port = us_socket_local_port(listenSocket);

  let closing: Promise<void> | null = null;
  return {
    url: `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`,
    port,
    close: () => {
      closing ??= (async () => {
        accepting = false;
        us_listen_socket_close(listenSocket);
        await gateway.closeAll(config.shutdownGraceMs);
        await wasmFilters.close();
        // Appends already accepted complete and are flushed by the logs' close.
        await broker.close();
        await topicTransforms.settled();
      })();
      return closing;
    },
  };
}
