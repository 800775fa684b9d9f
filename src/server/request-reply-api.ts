/**
 * Request-reply over HTTP, as the SDK's `client.request` does it over the
 * WebSocket protocol (docs/client.md, "Request-reply"):
 *
 *   POST /v1/topics/{topic}/requests?timeoutMs=5000   body: one CloudEvent (binary or structured)
 *
 * The broker creates an inbox topic for the call (`inbox.http-<random>`),
 * publishes the event to `topic` with its `replyto` extension naming the
 * inbox, and answers with the first event published there whose
 * `correlationid` is the request's `id` (structured mode, 200) — or
 * `TIMEOUT` (504) — and deletes the inbox either way.
 */
import { randomBytes } from 'node:crypto';
import { forEachStoredEvent, type Broker } from '../broker/index.js';
import {
  Extension,
  formatHttpStructured,
  fromEventFields,
  parseHttpRequest,
  toEventFields,
  type CloudEvent,
} from '../events/index.js';
import { BrokerError, encodeEventBatch } from '../protocol/index.js';
import { headersOf, integerQuery, problem, respond, withBody } from './http-reply.js';
import type { TemplatedApp } from './uws.js';

const TIMEOUT_MS_MAX = 5 * 60 * 1000;
/** How often the inbox is looked at while a reply is awaited. */
const POLL_MS = 5;

export interface RequestReplyHooks {
  /** Called after the request was appended, so subscriptions can be woken. */
  readonly appended: (topic: string) => void;
  readonly isReady: () => boolean;
}

export function attachRequestReplyApi(
  app: TemplatedApp,
  broker: Broker,
  maxBodyBytes: number,
  hooks: RequestReplyHooks,
): void {
  app.post('/v1/topics/:topic/requests', (res, req) => {
    const topic = req.getParameter(0) ?? '';
    const headers = headersOf(req);
    let timeoutMs: number;
    try {
      timeoutMs = Math.min(integerQuery(req, 'timeoutMs', 5000, 1), TIMEOUT_MS_MAX);
    } catch (error) {
      respond(res, () => problem(error));
      return;
    }
    withBody(res, maxBodyBytes, async (body) => {
      if (!hooks.isReady()) throw new BrokerError('SHUTTING_DOWN', 'the broker is shutting down');
      const { events } = parseHttpRequest({ headers, body });
      const [event] = events;
      if (event === undefined || events.length !== 1)
        throw new BrokerError('INVALID_REQUEST', `a request is one event, not ${events.length}`);
      const reply = await requestReply(broker, topic, event, timeoutMs, hooks);
      const formatted = formatHttpStructured(reply);
      return { status: 200, headers: formatted.headers, body: formatted.body };
    });
  });
}

async function requestReply(
  broker: Broker,
  topic: string,
  event: CloudEvent,
  timeoutMs: number,
  hooks: RequestReplyHooks,
): Promise<CloudEvent> {
  broker.describeTopic(topic); // TOPIC_NOT_FOUND before an inbox is made for nothing
  const inbox = `inbox.http-${randomBytes(8).toString('hex')}`;
  await broker.createTopic(inbox, 1, { 'segment.bytes': String(64 * 1024), 'retention.ms': '60000' });
  try {
    const request = { ...event, extensions: { ...event.extensions, [Extension.REPLY_TO]: inbox } };
    const published = await broker.publish(
      topic,
      { partition: -1, key: null },
      encodeEventBatch([toEventFields(request)]),
      { eventCount: 1, ack: 'leader', compression: 'none' },
    );
    if (published.transformedEvents === 0)
      throw new BrokerError(
        'INVALID_REQUEST',
        `the transform of "${topic}" left nothing of the request to store, so no reply can come`,
      );
    hooks.appended(topic);
    const deadline = Date.now() + timeoutMs;
    let offset = 0;
    while (Date.now() < deadline) {
      const log = broker.partition(inbox, 0);
      if (log.endOffset > offset) {
        const fetched = await broker.fetch(inbox, 0, offset, 1 << 20);
        for (const reply of repliesIn(fetched.batches))
          if (reply.extensions?.[Extension.CORRELATION_ID] === request.id) return reply;
        offset = fetched.nextOffset;
        continue;
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    throw new BrokerError(
      'TIMEOUT',
      `no reply to request ${request.id} on "${topic}" within ${timeoutMs} ms`,
    );
  } finally {
    await broker.deleteTopic(inbox).catch(() => undefined);
  }
}

function repliesIn(batches: Uint8Array): CloudEvent[] {
  const replies: CloudEvent[] = [];
  forEachStoredEvent(batches, (_, fields) => replies.push(fromEventFields(fields)));
  return replies;
}
