/**
 * `/v1/routing`: routing rule sets (src/broker/routing/, docs/filters.md#routing-rules).
 *
 *   PUT    /v1/routing/{id}           {source, rules: [...]}: create or replace, whole and at once
 *                                     (a rule's transform is loaded and pinned to a version first)
 *   GET    /v1/routing                every rule set, with routing counters
 *   GET    /v1/routing/{id}           one
 *   DELETE /v1/routing/{id}
 *   POST   /v1/routing/{id}/dry-run   one CloudEvent in structured JSON: the rules it matches, in order
 *
 * An invalid rule set is refused with INVALID_REQUEST whose problem body adds
 * `path` (a JSON Pointer into the set), `rule` and, for a CESQL error,
 * `position` ({line, column, offset, length} in `when`). An unknown id is 404
 * ROUTING_RULE_SET_NOT_FOUND.
 */
import { InvalidRuleSetError, type Broker, type RoutingRules } from '../broker/index.js';
import { BrokerError, isBrokerError } from '../protocol/index.js';
import {
  json,
  parseJsonObject,
  pathParameter,
  problem,
  respond,
  withBody,
  type Reply,
} from './http-reply.js';
import type { TemplatedApp } from './uws.js';

function notFound(id: string): Reply {
  return problem(new BrokerError('ROUTING_RULE_SET_NOT_FOUND', `no routing rule set "${id}"`));
}

/** problem(), with where an invalid rule set is wrong. */
function routingProblem(error: unknown): Reply {
  const reply = problem(error);
  const cause = error instanceof BrokerError ? error.cause : undefined;
  if (!(cause instanceof InvalidRuleSetError) || typeof reply.body !== 'string') return reply;
  const body = JSON.parse(reply.body) as Record<string, unknown>;
  const { path, rule, position } = cause;
  return { ...reply, body: JSON.stringify({ ...body, path, rule, position }) };
}

/** A handler whose failures are answered by routingProblem. */
function guarded<A>(handle: (arg: A) => Reply | Promise<Reply>): (arg: A) => Promise<Reply> {
  return async (arg) => {
    try {
      return await handle(arg);
    } catch (error) {
      return routingProblem(error);
    }
  };
}

/**
 * The rule set with each rule's transform loaded and pinned to a version (a
 * bare name: its latest), so that later uploads never change what a stored
 * rule runs. A transform that does not resolve refuses the set, at its path.
 */
async function pinTransforms(
  value: Record<string, unknown>,
  pin: (ref: string, owner: string) => Promise<string>,
): Promise<Record<string, unknown>> {
  const rules = value['rules'];
  if (!Array.isArray(rules)) return value; // RuleSet.compile says what is wrong
  const pinned = await Promise.all(
    rules.map(async (rule: unknown, i) => {
      if (typeof rule !== 'object' || rule === null) return rule;
      const { transform, name } = rule as Record<string, unknown>;
      if (typeof transform !== 'string') return rule;
      try {
        // One instance serves every rule's copies (PublishTransforms owner `routing`); putting the set again reloads it if stopped.
        const pinned = await pin(transform, 'routing');
        return { ...rule, transform: pinned };
      } catch (error) {
        const detail = error instanceof Error ? error.message : String(error);
        const where = new InvalidRuleSetError(
          `/rules/${i}/transform`,
          typeof name === 'string' ? name : null,
          detail,
        );
        throw new BrokerError(isBrokerError(error) ? error.errorName : 'INVALID_REQUEST', where.message, {
          cause: where,
        });
      }
    }),
  );
  return { ...value, rules: pinned };
}

export function attachRoutingApi(
  app: TemplatedApp,
  routing: RoutingRules,
  broker: Broker,
  maxBodyBytes: number,
  pin: (ref: string, owner: string) => Promise<string>,
): void {
  const topicExists = (name: string): boolean => broker.listTopics().some((topic) => topic.name === name);

  app.put('/v1/routing/:id', (res, req) => {
    const id = pathParameter(req, 0);
    withBody(
      res,
      maxBodyBytes,
      guarded(async (body: Uint8Array) => {
        const { view, created } = await routing.put(id, await pinTransforms(parseJsonObject(body), pin));
        return json(created ? 201 : 200, { ...view, created });
      }),
    );
  });

  app.get('/v1/routing', (res) =>
    respond(res, () => json(200, { ruleSets: routing.list(), stats: routing.stats() })),
  );

  app.get('/v1/routing/:id', (res, req) => {
    const id = pathParameter(req, 0);
    respond(res, () => {
      const view = routing.get(id);
      return view === null ? notFound(id) : json(200, view);
    });
  });

  app.del('/v1/routing/:id', (res, req) => {
    const id = pathParameter(req, 0);
    respond(res, async () => ((await routing.delete(id)) ? { status: 204 } : notFound(id)));
  });

  app.post('/v1/routing/:id/dry-run', (res, req) => {
    const id = pathParameter(req, 0);
    withBody(res, maxBodyBytes, (body) => {
      const result = routing.dryRun(id, body, topicExists);
      return result === null ? notFound(id) : json(200, { id, ...result });
    });
  });
}
