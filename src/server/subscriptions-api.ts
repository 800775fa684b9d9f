/**
 * `/v1/subscriptions`: durable subscriptions over HTTP, as over the WebSocket
 * protocol (src/broker/durable-subscriptions.ts).
 *
 *   POST   /v1/subscriptions                   {name, topic, type?, start?, filter?, config?}
 *   GET    /v1/subscriptions                   every subscription, with lag per partition
 *   GET    /v1/subscriptions/{name}            one
 *   DELETE /v1/subscriptions/{name}
 *   POST   /v1/subscriptions/{name}/seek       {to, topic?, partition?}
 *   POST   /v1/subscriptions/{name}/read       {max?, waitMs?}: events without joining (subscription-reads.ts)
 *   POST   /v1/subscriptions/{name}/commit     {positions: [{topic, partition, offset}]} (stream types, no members)
 *   POST   /v1/subscriptions/{name}/ack|nack   {receipts: [...], delayMs?, error?} (queues)
 *   PATCH  /v1/subscriptions/{name}            {filter: {wasm, onTrap?}}: swap its WASM filter version (subscription-filter-api.ts)
 *
 * A start position (`start`, `to`) is "earliest", "latest", {"offset": n} or
 * {"time": epoch-ms | RFC 3339}. A filter is the Subscriptions API filter
 * array, or {"wasm": "name@version"}.
 */
import type { Broker } from '../broker/index.js';
import { BrokerError, type StartPosition, type SubscriptionDescription } from '../protocol/index.js';
import { checkSubscriptionFilter } from './connection-state.js';
import { ackReceipts, parseReceipt, readSubscription } from './subscription-reads.js';
import { formatJsonEvent, fromEventFields } from '../events/index.js';
import { json, parseJsonObject, respond, withBody, pathParameter } from './http-reply.js';
import type { TemplatedApp } from './uws.js';
import type { WasmFilters } from './wasm-filters.js';

const invalid = (message: string): BrokerError => new BrokerError('INVALID_REQUEST', message);

/** Events one read returns at most, and how long it may wait for some. */
const READ_MAX = 1000;
const WAIT_MS_MAX = 60 * 60 * 1000;
const READ_POLL_MS = 20;
const NACK_DELAY_MS_MAX = 24 * 60 * 60 * 1000;

/** A start position as JSON. */
export function parseStartJson(value: unknown, field: string): StartPosition {
  if (value === 'earliest' || value === 'latest') return { kind: value, value: 0 };
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const entries = Object.entries(value);
    const [kind, raw] = entries[0] ?? [];
    if (entries.length === 1 && kind === 'offset' && Number.isSafeInteger(raw) && (raw as number) >= 0)
      return { kind: 'offset', value: raw as number };
    if (entries.length === 1 && kind === 'time') {
      const ms = typeof raw === 'string' ? Date.parse(raw) : raw;
      if (typeof ms === 'number' && Number.isSafeInteger(ms) && ms >= 0) return { kind: 'time', value: ms };
    }
  }
  throw invalid(
    `${field} must be "earliest", "latest", {"offset": n} or {"time": epoch-ms or RFC 3339}, got ${JSON.stringify(value)}`,
  );
}

function stringField(request: Record<string, unknown>, name: string, fallback?: string): string {
  const value = request[name] ?? fallback;
  if (typeof value !== 'string') throw invalid(`${name} must be a string`);
  return value;
}

/** The filter as the JSON text the broker keeps: an array of dialect filters, or {"wasm": ref}. */
function filterText(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value; // JSON text already, as the CLI sends it
  if (typeof value === 'object') return JSON.stringify(value);
  throw invalid('filter must be a filter array, {"wasm": "name@version"} or null');
}

/** A description for HTTP clients: the filter as JSON, lag spelled out. */
function view(description: SubscriptionDescription): Record<string, unknown> {
  return {
    name: description.name,
    topic: description.topic,
    type: description.subscriptionType,
    filter: description.filter === '' ? null : (JSON.parse(description.filter) as unknown),
    config: description.config,
    generation: description.generation,
    members: description.members,
    partitions: description.partitions.map((p) => ({
      ...p,
      lag: Math.max(0, p.endOffset - p.committed),
    })),
  };
}

export function attachSubscriptionsApi(
  app: TemplatedApp,
  broker: Broker,
  wasmFilters: WasmFilters,
  maxBodyBytes: number,
): void {
  app.post('/v1/subscriptions', (res) =>
    withBody(res, maxBodyBytes, async (body) => {
      const request = parseJsonObject(body);
      const settings = request['config'] ?? {};
      if (
        typeof settings !== 'object' ||
        settings === null ||
        Object.values(settings).some((v) => typeof v !== 'string')
      )
        throw invalid('config must be an object of string values');
      const filter = filterText(request['filter']);
      const created = await broker.subscriptions.create({
        name: stringField(request, 'name'),
        topic: stringField(request, 'topic'),
        type: stringField(request, 'type', 'stream'),
        start: parseStartJson(request['start'] ?? 'latest', 'start'),
        filter,
        config: settings as Record<string, string>,
        checkFilter: (text) => checkSubscriptionFilter(text, wasmFilters),
      });
      return json(201, view(created));
    }),
  );

  app.get('/v1/subscriptions', (res) =>
    respond(res, () => json(200, { subscriptions: broker.subscriptions.list().map(view) })),
  );

  app.get('/v1/subscriptions/:name', (res, req) => {
    const name = pathParameter(req, 0);
    respond(res, () => json(200, view(broker.subscriptions.describe(name))));
  });

  app.del('/v1/subscriptions/:name', (res, req) => {
    const name = pathParameter(req, 0);
    respond(res, async () => {
      await broker.subscriptions.delete(name);
      return { status: 204 };
    });
  });

  app.post('/v1/subscriptions/:name/read', (res, req) => {
    const name = pathParameter(req, 0);
    withBody(res, maxBodyBytes, async (body) => {
      const request = body.length === 0 ? {} : parseJsonObject(body);
      const max = request['max'] ?? 100;
      const waitMs = request['waitMs'] ?? 0;
      if (!Number.isSafeInteger(max) || (max as number) < 1 || (max as number) > READ_MAX)
        throw invalid(`max must be an integer from 1 to ${READ_MAX}`);
      if (!Number.isSafeInteger(waitMs) || (waitMs as number) < 0 || (waitMs as number) > WAIT_MS_MAX)
        throw invalid(`waitMs must be an integer from 0 to ${WAIT_MS_MAX}`);
      const deadline = Date.now() + (waitMs as number);
      for (;;) {
        const read = await readSubscription(broker, name, max as number);
        if (read.events.length > 0 || Date.now() >= deadline)
          return json(200, {
            events: read.events.map((e) => ({
              ...e,
              event: JSON.parse(formatJsonEvent(fromEventFields(e.event))) as unknown,
            })),
            ...(read.positions.length === 0 ? {} : { positions: read.positions }),
          });
        await new Promise((resolve) => setTimeout(resolve, READ_POLL_MS));
      }
    });
  });

  app.post('/v1/subscriptions/:name/commit', (res, req) => {
    const name = pathParameter(req, 0);
    withBody(res, maxBodyBytes, async (body) => {
      const positions = parseJsonObject(body)['positions'];
      if (!Array.isArray(positions))
        throw invalid('positions must be an array of {topic, partition, offset}');
      for (const p of positions as unknown[]) {
        const { topic, partition, offset } = (p ?? {}) as Record<string, unknown>;
        if (typeof topic !== 'string' || !Number.isSafeInteger(partition) || !Number.isSafeInteger(offset))
          throw invalid('each position is {topic, partition, offset}, the next offset to read');
        await broker.subscriptions.commitIdle(
          name,
          { topic, partition: partition as number },
          offset as number,
        );
      }
      return json(200, view(broker.subscriptions.describe(name)));
    });
  });

  app.post('/v1/subscriptions/:name/ack', (res, req) => {
    const name = pathParameter(req, 0);
    withBody(res, maxBodyBytes, async (body) => {
      const receipts = parseJsonObject(body)['receipts'];
      if (!Array.isArray(receipts)) throw invalid('receipts must be an array of receipts from a read');
      await ackReceipts(broker.subscriptions.queueOf(name), receipts.map(parseReceipt));
      return { status: 204 };
    });
  });

  app.post('/v1/subscriptions/:name/nack', (res, req) => {
    const name = pathParameter(req, 0);
    withBody(res, maxBodyBytes, async (body) => {
      const request = parseJsonObject(body);
      const receipts = request['receipts'];
      const delayMs = request['delayMs'] ?? null;
      const error = request['error'] ?? null;
      if (!Array.isArray(receipts)) throw invalid('receipts must be an array of receipts from a read');
      if (
        delayMs !== null &&
        (!Number.isSafeInteger(delayMs) || (delayMs as number) < 0 || (delayMs as number) > NACK_DELAY_MS_MAX)
      )
        throw invalid(`delayMs must be an integer from 0 to ${NACK_DELAY_MS_MAX}`);
      if (error !== null && typeof error !== 'string') throw invalid('error must be a string');
      const queue = broker.subscriptions.queueOf(name);
      for (const r of receipts.map(parseReceipt))
        queue.nack(r.consumer, r, r.offset, delayMs as number | null, error as string | null);
      return { status: 204 };
    });
  });

  app.post('/v1/subscriptions/:name/seek', (res, req) => {
    const name = pathParameter(req, 0);
    withBody(res, maxBodyBytes, async (body) => {
      const request = parseJsonObject(body);
      const topic = request['topic'] ?? null;
      if (topic !== null && typeof topic !== 'string') throw invalid('topic must be a string');
      const partition = request['partition'] ?? -1;
      if (!Number.isSafeInteger(partition) || (partition as number) < -1)
        throw invalid('partition must be an integer >= 0 (or -1 for every partition)');
      const to = parseStartJson(request['to'], 'to');
      return json(200, view(await broker.subscriptions.seek(name, topic, partition as number, to)));
    });
  });
}
