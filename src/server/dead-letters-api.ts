/**
 * `/v1/dlq`: dead-letter topics for operators (src/broker/dead-letter-office.ts).
 *
 *   GET  /v1/dlq                                     the dead-letter topics, with counts
 *   GET  /v1/dlq/{topic}?partition=&offset=&limit=   dead letters, each with its origin and any redrive
 *   POST /v1/dlq/{topic}/redrive                     {partition?, offsets? | from?, to?, target?, again?}
 */
import type { DeadLetterOffice, DeadLetterView } from '../broker/index.js';
import { formatJsonEvent, fromEventFields } from '../events/index.js';
import { BrokerError } from '../protocol/index.js';
import { integerQuery, json, parseJsonObject, respond, withBody, pathParameter } from './http-reply.js';
import type { TemplatedApp } from './uws.js';

const invalid = (message: string): BrokerError => new BrokerError('INVALID_REQUEST', message);

/** A dead letter for HTTP clients: the event in structured-mode JSON. */
const view = (d: DeadLetterView): Record<string, unknown> => ({
  partition: d.partition,
  offset: d.offset,
  origin: d.origin,
  redrive: d.redrive,
  event: JSON.parse(formatJsonEvent(fromEventFields(d.event))) as unknown,
});

function optionalInteger(request: Record<string, unknown>, name: string): number | undefined {
  const value = request[name];
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value) || (value as number) < 0) throw invalid(`${name} must be an integer >= 0`);
  return value as number;
}

export function attachDeadLettersApi(
  app: TemplatedApp,
  office: DeadLetterOffice,
  maxBodyBytes: number,
): void {
  app.get('/v1/dlq', (res) => respond(res, () => json(200, { deadLetterTopics: office.list() })));

  app.get('/v1/dlq/:topic', (res, req) => {
    const topic = pathParameter(req, 0);
    respond(res, async () => {
      const partition = integerQuery(req, 'partition', 0, 0);
      const offset = integerQuery(req, 'offset', 0, 0);
      const limit = Math.min(integerQuery(req, 'limit', 100, 1), 1000);
      const shown = await office.show(topic, partition, offset, limit);
      return json(200, { ...shown, deadLetters: shown.deadLetters.map(view) });
    });
  });

  app.post('/v1/dlq/:topic/redrive', (res, req) => {
    const topic = pathParameter(req, 0);
    withBody(res, maxBodyBytes, async (body) => {
      const request = parseJsonObject(body);
      const offsets = request['offsets'];
      if (offsets !== undefined && (!Array.isArray(offsets) || offsets.some((o) => !Number.isSafeInteger(o))))
        throw invalid('offsets must be an array of integers');
      const target = request['target'];
      if (target !== undefined && typeof target !== 'string') throw invalid('target must be a topic name');
      const again = request['again'] ?? false;
      if (typeof again !== 'boolean') throw invalid('again must be true or false');
      const partition = optionalInteger(request, 'partition');
      const from = optionalInteger(request, 'from');
      const to = optionalInteger(request, 'to');
      const redriven = await office.redrive(topic, {
        again,
        ...(offsets === undefined ? {} : { offsets: offsets as number[] }),
        ...(target === undefined ? {} : { target }),
        ...(partition === undefined ? {} : { partition }),
        ...(from === undefined ? {} : { from }),
        ...(to === undefined ? {} : { to }),
      });
      return json(200, { redriven });
    });
  });
}
