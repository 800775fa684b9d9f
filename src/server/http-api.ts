/**
 * The HTTP API under `/v1/`, plus `/healthz`, `/readyz` and `/metrics`.
 * CloudEvents come in and go out in all three modes of the CloudEvents HTTP
 * binding; errors are `application/problem+json` with the protocol's error
 * name as `code`, so HTTP and WebSocket clients see the same table.
 */
import type { Broker } from '../broker/index.js';
import {
  CloudEventValidationError,
  fromEventFields,
  formatHttpBatch,
  formatHttpBinary,
  formatHttpStructured,
  isEventsError,
  parseHttpRequest,
  toEventFields,
  type CloudEvent,
} from '../events/index.js';
import { uncompressSync } from 'lz4-napi';
import {
  BrokerError,
  ackLevels,
  decodeEventBatch,
  encodeEventBatch,
  errorCodes,
  forEachStoredBatch,
  invalidTopicPattern,
  isBrokerError,
  matchesTopicPattern,
  type AckLevel,
  type TopicDescription,
} from '../protocol/index.js';
import type { ResolvedConfig } from './config.js';
import type { BrokerMetrics } from './metrics.js';
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws.js';

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  400: 'Bad Request',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  507: 'Insufficient Storage',
};

interface Reply {
  readonly status: number;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Uint8Array;
}

const json = (status: number, value: unknown): Reply => ({
  status,
  contentType: 'application/json',
  body: JSON.stringify(value),
});

/** An error as problem+json (RFC 9457), `code` being the protocol's error name. */
function problem(error: unknown): Reply {
  let brokerError: BrokerError;
  let extra: Record<string, unknown> = {};
  if (isBrokerError(error)) {
    brokerError = error;
  } else if (isEventsError(error)) {
    const name =
      error.code === 'UNSUPPORTED_CONTENT_TYPE'
        ? 'UNSUPPORTED_CONTENT_TYPE'
        : error.code === 'TOO_MANY_EVENTS'
          ? 'BATCH_TOO_LARGE'
          : error.code === 'INVALID_EVENT'
            ? 'INVALID_EVENT'
            : 'INVALID_REQUEST';
    brokerError = new BrokerError(name, error.message);
    if (error instanceof CloudEventValidationError) extra = { invalidEvents: error.invalidEvents };
  } else {
    brokerError = new BrokerError('INTERNAL', error instanceof Error ? error.message : String(error));
  }
  const status = errorCodes[brokerError.errorName].httpStatus;
  return {
    status,
    contentType: 'application/problem+json',
    body: JSON.stringify({
      type: `urn:eddy:error:${brokerError.errorName}`,
      title: brokerError.errorName,
      status,
      detail: brokerError.message,
      code: brokerError.errorName,
      retriable: brokerError.retriable,
      ...extra,
    }),
  };
}

function send(res: HttpResponse, state: { aborted: boolean }, reply: Reply): void {
  if (state.aborted) return;
  state.aborted = true; // a response is answered once
  const headers = Object.entries(reply.headers ?? {});
  // Header values come from stored events: anything but a string would throw inside uWS.
  if (headers.some(([, value]) => typeof value !== 'string')) {
    reply = problem(new BrokerError('INTERNAL', 'a stored event cannot be written as HTTP headers'));
    headers.length = 0;
  }
  try {
    res.cork(() => {
      res.writeStatus(`${reply.status} ${STATUS_TEXT[reply.status] ?? ''}`);
      if (reply.contentType) res.writeHeader('content-type', reply.contentType);
      for (const [name, value] of headers) res.writeHeader(name, value);
      res.end(reply.body ?? '');
    });
  } catch {
    // Half-written: all that is left is to drop the connection, never to let the error reach uWS.
    res.close();
  }
}

/** Runs `handle` and sends what it returns, or the problem it throws; never lets an error escape into uWS. */
function respond(res: HttpResponse, handle: () => Reply | Promise<Reply>): void {
  const state = { aborted: false };
  res.onAborted(() => {
    state.aborted = true;
  });
  let result: Reply | Promise<Reply>;
  try {
    result = handle();
  } catch (error) {
    send(res, state, problem(error));
    return;
  }
  if (result instanceof Promise) {
    result.then(
      (reply) => send(res, state, reply),
      (error: unknown) => send(res, state, problem(error)),
    );
  } else {
    send(res, state, result);
  }
}

/** Reads the whole body (copying uWS's transient chunks), refusing more than `limit` bytes. */
function withBody(
  res: HttpResponse,
  limit: number,
  handle: (body: Uint8Array) => Reply | Promise<Reply>,
): void {
  const state = { aborted: false };
  res.onAborted(() => {
    state.aborted = true;
  });
  const chunks: Uint8Array[] = [];
  let size = 0;
  let refused = false;
  res.onData((chunk, isLast) => {
    if (refused) return;
    size += chunk.byteLength;
    if (size > limit) {
      refused = true;
      send(res, state, problem(new BrokerError('FRAME_TOO_LARGE', `the body exceeds ${limit} bytes`)));
      return;
    }
    chunks.push(new Uint8Array(chunk.slice(0)));
    if (!isLast) return;
    const body = concat(chunks, size);
    let result: Reply | Promise<Reply>;
    try {
      result = handle(body);
    } catch (error) {
      send(res, state, problem(error));
      return;
    }
    Promise.resolve(result).then(
      (reply) => send(res, state, reply),
      (error: unknown) => send(res, state, problem(error)),
    );
  });
}

function concat(chunks: readonly Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const body = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.length;
  }
  return body;
}

function headersOf(req: HttpRequest): Record<string, string> {
  const headers: Record<string, string> = {};
  req.forEach((name, value) => {
    headers[name] = value;
  });
  return headers;
}

function integerQuery(req: HttpRequest, name: string, fallback: number, min: number): number {
  const raw = req.getQuery(name);
  if (raw === undefined || raw === '') return fallback;
  const value = /^-?\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min)
    throw new BrokerError(
      'INVALID_REQUEST',
      `query parameter ${name} must be an integer >= ${min}, got "${raw}"`,
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
    let target: {
      partition: number;
      key: Uint8Array | null;
      ack: AckLevel;
      producerId: number;
      sequence: number;
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
      const published = await broker.publish(topic, target, block, {
        eventCount: events.length,
        ack: target.ack,
        compression: 'none',
        producerId: target.producerId,
        sequence: target.sequence,
      });
      metrics.publishedEvents.inc({ topic }, events.length);
      metrics.publishedBatches.inc({ topic });
      hooks.appended(topic);
      return json(200, { topic, ...published, count: events.length });
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
      // uWS's request is valid only until this returns: everything read from it is read above.
      return broker.fetch(topic, partition, offset, config.maxFrameBytes).then((fetched): Reply => {
        const events: CloudEvent[] = [];
        let nextOffset = offset;
        forEachStoredBatch(fetched.batches, (batch) => {
          const block =
            batch.compression === 'lz4' ? uncompressSync(Buffer.from(batch.events)) : batch.events;
          decodeEventBatch(block).forEach((fields, i) => {
            const eventOffset = batch.baseOffset + i;
            if (eventOffset < offset || events.length >= limit) return;
            events.push(fromEventFields(fields));
            nextOffset = eventOffset + 1;
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

function parseJsonObject(body: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(body));
  } catch (error) {
    throw new BrokerError('INVALID_REQUEST', `the body is not JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new BrokerError('INVALID_REQUEST', 'the body must be a JSON object');
  return value as Record<string, unknown>;
}
