/**
 * The HTTP API under `/v1/`, plus `/healthz`, `/readyz` and `/metrics`.
 * CloudEvents come in and go out in all three modes of the CloudEvents HTTP
 * binding; errors are `application/problem+json` with the protocol's error
 * name as `code`, so HTTP and WebSocket clients see the same table.
 */
import { SubscriptionFilter, eventBlockOf, type Broker } from '../broker/index.js';
import {
  deliverAtOf,
  fromEventFields,
  formatHttpBatch,
  formatHttpBinary,
  formatHttpStructured,
  parseHttpRequest,
  parseTimestampMs,
  toEventFields,
  type CloudEvent,
} from '../events/index.js';
import {
  BrokerError,
  ackLevels,
  decodeEventBatch,
  encodeEventBatch,
  forEachStoredBatch,
  invalidTopicPattern,
  isKept,
  matchesTopicPattern,
  type AckLevel,
  type TopicDescription,
} from '../protocol/index.js';
import type { ResolvedConfig } from './config.js';
import {
  headersOf,
  integerQuery,
  json,
  parseJsonObject,
  problem,
  respond,
  withBody,
  type Reply,
} from './http-reply.js';
import type { BrokerMetrics } from './metrics.js';
import { AddressQuotas, publishQuotaOf, quotaExceeded } from './publish-quota.js';
import type { HttpRequest, TemplatedApp } from './uws.js';

/** Client addresses whose HTTP publish quota is remembered at once (about 100 bytes each). */
const QUOTA_ADDRESSES_MAX = 65_536;

/** `?deliverAt=`: an RFC 3339 date-time or epoch milliseconds; 0 when absent. */
function deliverAtQuery(req: HttpRequest): number {
  const raw = req.getQuery('deliverAt');
  if (raw === undefined || raw === '') return 0;
  const value = /^\d+$/.test(raw) ? Number(raw) : parseTimestampMs(raw);
  if (!Number.isSafeInteger(value))
    throw new BrokerError(
      'INVALID_REQUEST',
      `query parameter deliverAt must be an RFC 3339 date-time or epoch milliseconds, got "${raw}"`,
    );
  return value;
}

const describe = (topic: TopicDescription): Omit<TopicDescription, 'type'> => ({
  name: topic.name,
  partitions: topic.partitions,
  config: topic.config,
});

export interface HttpApiHooks {
  /** Called after events were appended, so subscriptions can be woken. */
  readonly appended: (topic: string) => void;
  /** Called after a topic was deleted, so its subscriptions can be ended. */
  readonly deleted: (topic: string) => void;
  readonly isReady: () => boolean;
}

export function attachHttpApi(
  app: TemplatedApp,
  broker: Broker,
  config: ResolvedConfig,
  metrics: BrokerMetrics,
  hooks: HttpApiHooks,
): void {
  const publishQuota = publishQuotaOf(config);
  const quotas = publishQuota === null ? null : new AddressQuotas(publishQuota, QUOTA_ADDRESSES_MAX);
  const addressText = new TextDecoder();

  app.get('/healthz', (res) => respond(res, () => json(200, { status: 'ok' })));

  app.get('/readyz', (res) =>
    respond(res, () => {
      const failedPartitions = broker.failedPartitions();
      const ready = hooks.isReady() && failedPartitions.length === 0;
      return json(ready ? 200 : 503, { ready, shuttingDown: !hooks.isReady(), failedPartitions });
    }),
  );

  app.get('/metrics', (res) =>
    respond(res, async () => ({
      status: 200,
      contentType: metrics.registry.contentType,
      body: await metrics.registry.metrics(),
    })),
  );

  app.get('/v1/topics', (res, req) => {
    // ?match=orders.* lists the topics a wildcard subscription to that pattern reads.
    const match = req.getQuery('match') ?? '';
    respond(res, () => {
      const invalid = match === '' ? null : invalidTopicPattern(match);
      if (invalid !== null)
        throw new BrokerError('INVALID_REQUEST', `invalid topic pattern "${match}": ${invalid}`);
      const topics = broker
        .listTopics()
        .filter((topic) => match === '' || matchesTopicPattern(match, topic.name));
      return json(200, { topics: topics.map(describe) });
    });
  });

  app.post('/v1/topics', (res) =>
    withBody(res, config.maxFrameBytes, async (body) => {
      const request = parseJsonObject(body);
      const { name, partitions = 1, config: settings = {} } = request;
      if (typeof name !== 'string') throw new BrokerError('INVALID_REQUEST', 'name must be a string');
      if (typeof partitions !== 'number')
        throw new BrokerError('INVALID_REQUEST', 'partitions must be a number');
      if (
        typeof settings !== 'object' ||
        settings === null ||
        Object.values(settings).some((v) => typeof v !== 'string')
      )
        throw new BrokerError('INVALID_REQUEST', 'config must be an object of string values');
      return json(
        201,
        describe(await broker.createTopic(name, partitions, settings as Record<string, string>)),
      );
    }),
  );

  app.get('/v1/topics/:topic', (res, req) => {
    const topic = req.getParameter(0);
    respond(res, () => json(200, describe(broker.describeTopic(topic))));
  });

  app.post('/v1/topics/:topic/partitions', (res, req) => {
    const topic = req.getParameter(0);
    withBody(res, config.maxFrameBytes, async (body) => {
      const { partitions } = parseJsonObject(body);
      if (typeof partitions !== 'number')
        throw new BrokerError('INVALID_REQUEST', 'partitions (the new total) must be a number');
      return json(200, describe(await broker.addPartitions(topic, partitions)));
    });
  });

  app.del('/v1/topics/:topic', (res, req) => {
    const topic = req.getParameter(0);
    respond(res, async () => {
      await broker.deleteTopic(topic);
      hooks.deleted(topic);
      return { status: 204 };
    });
  });

  app.post('/v1/topics/:topic/events', (res, req) => {
    // The request object is only valid until this handler returns: read everything now.
    const topic = req.getParameter(0);
    const headers = headersOf(req);
    const address = quotas === null ? '' : addressText.decode(res.getRemoteAddressAsText());
    let target: {
      partition: number;
      key: Uint8Array | null;
      ack: AckLevel;
      producerId: number;
      sequence: number;
      deliverAtMs: number;
    };
    try {
      const ack = req.getQuery('ack') || 'leader';
      if (!(ackLevels as readonly string[]).includes(ack))
        throw new BrokerError('INVALID_REQUEST', `ack must be one of ${ackLevels.join(', ')}, got "${ack}"`);
      const key = req.getQuery('key');
      target = {
        partition: integerQuery(req, 'partition', -1, -1),
        key: key ? new TextEncoder().encode(key) : null,
        ack: ack as AckLevel,
        producerId: integerQuery(req, 'producerId', -1, -1),
        sequence: integerQuery(req, 'sequence', -1, -1),
        deliverAtMs: deliverAtQuery(req),
      };
    } catch (error) {
      respond(res, () => problem(error));
      return;
    }
    withBody(res, config.maxFrameBytes, async (body) => {
      if (!hooks.isReady())
        throw new BrokerError('SHUTTING_DOWN', 'the broker is shutting down; publish again later');
      const { events } = parseHttpRequest({ headers, body }, { batchEventCountMax: config.maxBatchEvents });
      if (events.length === 0) throw new BrokerError('INVALID_REQUEST', 'the request holds no events');
      const block = encodeEventBatch(events.map(toEventFields));
      // After parsing: a request's event count and stored size are known only then.
      if (quotas !== null) {
        const now = performance.now();
        const bucket = quotas.bucketOf(address, now);
        const retryAfterMs = bucket.take(events.length, block.length, now);
        if (retryAfterMs > 0) {
          metrics.quotaRejections.inc({ transport: 'http' });
          const error = quotaExceeded(bucket.limits, `client address ${address}`, retryAfterMs);
          // Retry-After counts whole seconds (RFC 9110); the body has the exact figure.
          return {
            ...problem(error),
            headers: { 'retry-after': String(Math.ceil(retryAfterMs / 1000)) },
          };
        }
      }
      // The events were validated, so each deliverat is a date-time.
      const deliverAtMs = events.reduce(
        (latest, event) => Math.max(latest, deliverAtOf(event) || 0),
        target.deliverAtMs,
      );
      const published = await broker.publish(topic, target, block, {
        eventCount: events.length,
        ack: target.ack,
        compression: 'none',
        producerId: target.producerId,
        sequence: target.sequence,
        ...(deliverAtMs > 0 ? { deliverAtMs } : {}),
      });
      metrics.publishedEvents.inc({ topic }, events.length);
      metrics.publishedBatches.inc({ topic });
      if (published.deliverAtMs === undefined) {
        hooks.appended(topic);
        return json(200, { topic, ...published, count: events.length });
      }
      // Accepted for later: the batch reaches the topic at deliverAt (the gateway wakes its readers then).
      const deliverAt = new Date(published.deliverAtMs).toISOString();
      return json(202, { topic, ...published, count: events.length, deliverAt });
    });
  });

  app.get('/v1/topics/:topic/events', (res, req) => {
    const topic = req.getParameter(0);
    respond(res, () => {
      const partition = integerQuery(req, 'partition', 0, 0);
      const offset = integerQuery(req, 'offset', 0, 0);
      // batch: a JSON array; structured or binary: one event per request, as the HTTP binding defines them.
      const mode = req.getQuery('mode') || 'batch';
      if (mode !== 'batch' && mode !== 'structured' && mode !== 'binary')
        throw new BrokerError('INVALID_REQUEST', `mode must be batch, structured or binary, got "${mode}"`);
      const limit =
        mode === 'batch' ? Math.min(integerQuery(req, 'limit', 100, 1), config.maxBatchEvents) : 1;
      // sql: only the events a CloudEvents SQL expression matches (the offsets still move past the others).
      const sql = req.getQuery('sql') ?? '';
      const filter = sql === '' ? null : SubscriptionFilter.parse(JSON.stringify({ sql }));
      // uWS's request is valid only until this returns: everything read from it is read above.
      return broker.fetch(topic, partition, offset, config.maxFrameBytes).then((fetched): Reply => {
        const events: CloudEvent[] = [];
        let nextOffset = offset;
        forEachStoredBatch(fetched.batches, (batch) => {
          const block = eventBlockOf(batch);
          const kept = filter === null ? null : filter.keepEvents(block);
          decodeEventBatch(block).forEach((fields, i) => {
            const eventOffset = batch.baseOffset + i;
            if (eventOffset < offset || events.length >= limit) return;
            nextOffset = eventOffset + 1;
            if (kept === 'none' || (kept !== null && !isKept(kept, i))) return;
            events.push(fromEventFields(fields));
          });
        });
        metrics.deliveredEvents.inc({ topic }, events.length);
        const positions = {
          'eddy-next-offset': String(nextOffset),
          'eddy-start-offset': String(fetched.startOffset),
          'eddy-end-offset': String(fetched.endOffset),
        };
        const first = events[0];
        if (mode === 'batch' || first === undefined) {
          // Nothing at this offset yet: 204 for the single-event modes, an empty array in batch mode.
          if (mode !== 'batch') return { status: 204, headers: positions };
          const formatted = formatHttpBatch(events);
          return { status: 200, headers: { ...formatted.headers, ...positions }, body: formatted.body };
        }
        const formatted = mode === 'binary' ? formatHttpBinary(first) : formatHttpStructured(first);
        return { status: 200, headers: { ...formatted.headers, ...positions }, body: formatted.body };
      });
    });
  });

  app.any('/*', (res, req) => {
    const path = req.getUrl();
    respond(res, () =>
      problem(new BrokerError('INVALID_REQUEST', `no route ${req.getMethod().toUpperCase()} ${path}`)),
    );
  });
}
