/**
 * `/v1/subscriptions`: durable subscriptions over HTTP, as over the WebSocket
 * protocol (src/broker/durable-subscriptions.ts).
 *
 *   POST   /v1/subscriptions                   {name, topic, type?, start?, filter?, config?}
 *   GET    /v1/subscriptions                   every subscription, with lag per partition
 *   GET    /v1/subscriptions/{name}            one
 *   DELETE /v1/subscriptions/{name}
 *   POST   /v1/subscriptions/{name}/seek       {to, topic?, partition?}
 *
 * A start position (`start`, `to`) is "earliest", "latest", {"offset": n} or
 * {"time": epoch-ms | RFC 3339}. A filter is the Subscriptions API filter
 * array, or {"wasm": "name@version"}.
 */
import type { Broker } from '../broker/index.js';
import { BrokerError, type StartPosition, type SubscriptionDescription } from '../protocol/index.js';
import { checkSubscriptionFilter } from './connection-state.js';
import { json, parseJsonObject, respond, withBody } from './http-reply.js';
import type { TemplatedApp } from './uws.js';
import type { WasmFilters } from './wasm-filters.js';

const invalid = (message: string): BrokerError => new BrokerError('INVALID_REQUEST', message);

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
    const name = decodeURIComponent(req.getParameter(0) ?? '');
    respond(res, () => json(200, view(broker.subscriptions.describe(name))));
  });

  app.del('/v1/subscriptions/:name', (res, req) => {
    const name = decodeURIComponent(req.getParameter(0) ?? '');
    respond(res, async () => {
      await broker.subscriptions.delete(name);
      return { status: 204 };
    });
  });

  app.post('/v1/subscriptions/:name/seek', (res, req) => {
    const name = decodeURIComponent(req.getParameter(0) ?? '');
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
