/**
 * Routing rule sets from the SDK (`client.routing`): upload, read, delete and
 * dry-run them (docs/filters.md#routing-rules). Operator calls, so they go
 * over the broker's HTTP API (`/v1/routing`, as the CLI does) with the
 * platform's `fetch`, in Node and in browsers alike.
 */
import { BrokerError, isBrokerError } from '../protocol/index.js';
import type { HttpApi } from './http-api.js';

export interface RoutingRuleInput {
  readonly name: string;
  /** Higher first; ties in the order given. Default 0. */
  readonly priority?: number;
  /** CESQL over attributes, extensions and JSON data fields (`data.<path>`); absent routes every event. */
  readonly when?: string | null;
  /** One to 16 destination topics. */
  readonly to: readonly string[];
  /**
   * A WASM transform (`name`, pinned to its latest version on upload, or
   * `name@version`) run over the copies: the destinations store its output.
   * An event it fails on refuses the publish. Default none.
   */
  readonly transform?: string | null;
  /** Once this rule matched an event, lower rules skip it. Default false. */
  readonly stop?: boolean;
}

export interface RoutingRuleSetInput {
  /** A topic name or pattern (`orders.*`, `orders.>`). */
  readonly source: string;
  readonly rules: readonly RoutingRuleInput[];
}

export interface RoutingRuleSet {
  readonly id: string;
  readonly source: string;
  readonly rules: readonly Required<RoutingRuleInput>[];
  readonly version: number;
  readonly updatedAt: string;
}

export interface RoutingDryRun {
  readonly id: string;
  readonly matched: {
    name: string;
    priority: number;
    to: string[];
    transform: string | null;
    stop: boolean;
  }[];
  readonly skipped: string[];
  readonly stoppedBy: string | null;
  readonly to: string[];
  readonly errors: { rule: string; error: string }[];
  /** Destinations that do not exist: a publish of this event would be refused. */
  readonly missingTopics: string[];
}

/** Why a rule set was refused: where in it, and for a CESQL error where in `when`. */
export interface RoutingRuleSetProblem {
  readonly path: string;
  readonly rule: string | null;
  readonly position: { line: number; column: number; offset: number; length: number } | null;
}

const NOT_FOUND = 'ROUTING_RULE_SET_NOT_FOUND';

export class Routing {
  readonly #api: HttpApi;

  constructor(api: HttpApi) {
    this.#api = api;
  }

  /**
   * Creates or replaces the rule set `id`, whole: publishes see the old rules
   * or the new ones, never a mix. An invalid set rejects with INVALID_REQUEST;
   * its `cause` is a RoutingRuleSetProblem.
   */
  async set(id: string, ruleSet: RoutingRuleSetInput): Promise<RoutingRuleSet & { created: boolean }> {
    return (await this.#call(this.#path(id), {
      method: 'PUT',
      body: JSON.stringify(ruleSet),
    })) as RoutingRuleSet & { created: boolean };
  }

  /** The rule set, or null when there is none under `id`. */
  async get(id: string): Promise<RoutingRuleSet | null> {
    return (await this.#call(this.#path(id), {}, true)) as RoutingRuleSet | null;
  }

  async list(): Promise<RoutingRuleSet[]> {
    return ((await this.#call('/v1/routing')) as { ruleSets: RoutingRuleSet[] }).ruleSets;
  }

  /** False when there was no rule set under `id`. */
  async delete(id: string): Promise<boolean> {
    return (await this.#call(this.#path(id), { method: 'DELETE' }, true)) !== null;
  }

  /** Which rules of `id` an event (structured-mode JSON, as an object or text) would match. */
  async dryRun(id: string, event: Record<string, unknown> | string): Promise<RoutingDryRun> {
    const body = typeof event === 'string' ? event : JSON.stringify(event);
    const answer = await this.#call(`${this.#path(id)}/dry-run`, { method: 'POST', body });
    if (answer === null) throw new BrokerError('INVALID_REQUEST', `no routing rule set "${id}"`);
    return answer as RoutingDryRun;
  }

  #path(id: string): string {
    if (typeof id !== 'string' || id === '') throw new TypeError('a rule set id is a non-empty string');
    return `/v1/routing/${encodeURIComponent(id)}`;
  }

  /** Calls the API (null for a missing set when `nullIfMissing`); a refused set's error has where it is wrong as its `cause`. */
  async #call(path: string, init: RequestInit = {}, nullIfMissing = false): Promise<unknown> {
    try {
      return await this.#api.call(path, init);
    } catch (error) {
      if (!isBrokerError(error)) throw error;
      if (nullIfMissing && isBrokerError(error, NOT_FOUND)) return null;
      const body = error.cause as Partial<RoutingRuleSetProblem> | null | undefined;
      if (body?.path === undefined) throw error;
      const problem = { path: body.path, rule: body.rule ?? null, position: body.position ?? null };
      throw new BrokerError(error.errorName, error.message, { cause: problem });
    }
  }
}
