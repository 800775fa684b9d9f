/**
 * A routing rule set (docs/filters.md#routing-rules): for the topics one
 * source name or pattern covers, rules that copy matching events to other
 * topics. Validated and compiled once, when it is uploaded or loaded:
 *
 *   { "source": "orders.*",                      a topic name, or a pattern (`*` one word, `>` the rest)
 *     "rules": [
 *       { "name": "big-eu",                      unique in the set
 *         "priority": 10,                        optional integer, default 0; higher first, ties by order
 *         "when": "region = 'eu' AND amount > 100",  optional CESQL; absent matches every event
 *         "to": ["orders-big", "audit"],         1 to 16 topic names, never one the source covers
 *         "transform": "mask-email@2",           optional WASM transform run over the copies (name or name@version)
 *         "stop": true } ] }                     optional; once it matched, lower rules skip the event
 *
 * Every problem is an InvalidRuleSetError naming a JSON Pointer into the set
 * (`/rules/2/when`), the rule, and for a CESQL error its position in `when`.
 * Unknown fields are refused.
 *
 * Each (destination, transform) pair gets one copy: an event two rules send
 * to one topic is copied there once, unless the rules transform it
 * differently, in which case each transform's output is stored.
 */
import {
  CesqlError,
  compile,
  isDataPath,
  type AttributeReader,
  type CompiledExpression,
  type SourceSpan,
} from '../../filters/cesql.js';
import { parseFilterRef } from '../../filters/registry/ref.js';
import { EventBlockReader, invalidTopicPattern, matchesTopicPattern } from '../../protocol/index.js';
import { StoredAttributes } from '../stored-attributes.js';
import { invalidTopicName } from '../topic-name.js';

/** Bounds on one rule set, so one upload cannot make every publish to its topics arbitrarily slow. */
export const RULES_MAX = 256;
export const DESTINATIONS_MAX = 16;
export const WHEN_CHARS_MAX = 4096;
export const NAME_CHARS_MAX = 128;
const PRIORITY_MIN = -0x8000_0000;
const PRIORITY_MAX = 0x7fff_ffff;

const NAME = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const RULE_SET_FIELDS = new Set(['source', 'rules']);
const RULE_FIELDS = new Set(['name', 'priority', 'when', 'to', 'transform', 'stop']);

/** A rule as uploaded (defaults filled in): what GET returns and the file holds. */
export interface RoutingRule {
  readonly name: string;
  readonly priority: number;
  /** CESQL; null routes every event. */
  readonly when: string | null;
  readonly to: readonly string[];
  /** A WASM transform (`name` or `name@version`) run over the copies this rule makes; null copies events as they are. */
  readonly transform: string | null;
  readonly stop: boolean;
}

export interface RoutingRuleSetSpec {
  readonly source: string;
  readonly rules: readonly RoutingRule[];
}

export class InvalidRuleSetError extends Error {
  override readonly name = 'InvalidRuleSetError';
  /** JSON Pointer into the uploaded rule set, e.g. `/rules/2/when`. */
  readonly path: string;
  /** The rule's name, when the problem is in a rule that has one. */
  readonly rule: string | null;
  /** Where in `when` a CESQL error is (line and column from 1). */
  readonly position: SourceSpan | null;

  constructor(path: string, rule: string | null, detail: string, cause?: CesqlError) {
    super(
      `invalid routing rule set at ${path === '' ? '/' : path}${rule === null ? '' : ` (rule "${rule}")`}: ${detail}`,
      cause === undefined ? undefined : { cause },
    );
    this.path = path;
    this.rule = rule;
    this.position = cause?.span ?? null;
  }
}

/** Why `id` cannot name a rule set, or null. Ids follow the topic-name rules, at most 128 characters. */
export function invalidRuleSetId(id: string): string | null {
  if (id.length === 0 || id.length > NAME_CHARS_MAX)
    return `a rule set id is 1 to ${NAME_CHARS_MAX} characters`;
  if (!NAME.test(id)) return 'a rule set id is dot-separated words of letters, digits, "-" and "_"';
  return null;
}

interface CompiledRule extends RoutingRule {
  /** `when`, compiled; null when the rule has none (it matches every event). */
  readonly expression: CompiledExpression | null;
}

/**
 * The events of one block as routing conditions read them, one at a time:
 * attributes and extensions in place (as subscription filters read them),
 * and, when some condition reads a data path, the event's JSON data parsed
 * at most once, however many rules and rule sets read it, and only once one
 * does. One is made per rule set and per covered topic and reused by every
 * publish (a publish computes its copies synchronously, so they never
 * overlap): an event whose conditions read no data costs no allocation here.
 */
export class RoutedEvents {
  readonly reader = new EventBlockReader();
  /** The reader CESQL conditions are evaluated with. */
  readonly read: AttributeReader<EventBlockReader>;
  readonly #attributes: StoredAttributes;

  /** `dataPaths`: every data path the conditions that will read these events name. */
  constructor(dataPaths: readonly string[]) {
    this.#attributes = new StoredAttributes(dataPaths);
    this.read = this.#attributes.read;
  }

  /** Points at a block (uncompressed, verified) and returns how many events it holds; `select` one next. */
  open(block: Uint8Array): number {
    this.#attributes.forget();
    return this.reader.reset(block);
  }

  select(index: number): void {
    this.reader.selectEvent(index);
  }

  /** Lets go of the last event's parsed data (kept otherwise until the next block). */
  close(): void {
    this.#attributes.forget();
  }
}

/** The data paths (`data.total`) the rules' conditions read, each once. */
function dataPathsOf(rules: readonly CompiledRule[]): string[] {
  const paths = new Set<string>();
  for (const rule of rules)
    for (const name of rule.expression?.attributes ?? []) if (isDataPath(name)) paths.add(name);
  return [...paths];
}

/** One copy a publish makes: the events (bit i, LSB first) going to `topic` through `transform`. */
export interface Destination {
  readonly topic: string;
  readonly transform: string | null;
  readonly events: Uint8Array;
}

/** Which events go where, by `destinationKey`. */
export type Destinations = Map<string, Destination>;

function destinationKey(topic: string, transform: string | null): string {
  return transform === null ? topic : `${topic}\u0000${transform}`;
}

export interface DryRunRule {
  readonly name: string;
  readonly priority: number;
  readonly to: readonly string[];
  readonly transform: string | null;
  readonly stop: boolean;
}

export interface DryRunResult {
  /** Rules that applied to the event, in evaluation order (priority, then upload order), `stop` honoured. */
  readonly matched: DryRunRule[];
  /** Rules that matched too but came after a `stop`. */
  readonly skipped: string[];
  readonly stoppedBy: string | null;
  /** Every destination, once, in the order rules named them. */
  readonly to: string[];
  /** CESQL errors the rules raised over this event (a rule that raises one does not match). */
  readonly errors: { rule: string; error: string }[];
}

export class RuleSet {
  readonly id: string;
  readonly spec: RoutingRuleSetSpec;
  /** The data paths the conditions read (`data.items.0.sku`), each once; empty when none reads data. */
  readonly dataPaths: readonly string[];
  /** In evaluation order: priority descending, ties in upload order. */
  readonly #rules: readonly CompiledRule[];
  /** For `route` and `dryRun` of this set alone, made on first use. */
  #events: RoutedEvents | null = null;

  private constructor(id: string, spec: RoutingRuleSetSpec, rules: readonly CompiledRule[]) {
    this.id = id;
    this.spec = spec;
    this.#rules = rules;
    this.dataPaths = Object.freeze(dataPathsOf(rules));
  }

  /** Validates and compiles a rule set as uploaded (parsed JSON); throws InvalidRuleSetError. */
  static compile(id: string, value: unknown): RuleSet {
    const reason = invalidRuleSetId(id);
    if (reason !== null) throw new InvalidRuleSetError('', null, reason);
    if (!isObject(value)) throw new InvalidRuleSetError('', null, 'a rule set is a JSON object');
    for (const key of Object.keys(value))
      if (!RULE_SET_FIELDS.has(key))
        throw new InvalidRuleSetError(`/${key}`, null, `unknown field; a rule set has source and rules`);
    const source = value['source'];
    if (typeof source !== 'string')
      throw new InvalidRuleSetError('/source', null, 'source must be a topic name or pattern');
    const sourceProblem = source.length === 0 ? 'must not be empty' : invalidTopicPattern(source);
    if (sourceProblem !== null || source.startsWith('$'))
      throw new InvalidRuleSetError(
        '/source',
        null,
        `"${source}" is not a topic name or pattern: ${sourceProblem ?? 'system topics are not routed'}`,
      );
    const rules = value['rules'];
    if (!Array.isArray(rules) || rules.length === 0)
      throw new InvalidRuleSetError('/rules', null, 'rules must be an array of at least one rule');
    if (rules.length > RULES_MAX)
      throw new InvalidRuleSetError('/rules', null, `a rule set holds at most ${RULES_MAX} rules`);
    const names = new Set<string>();
    const compiled = rules.map((rule, i) => compileRule(rule, `/rules/${i}`, source, names));
    // A stable sort: equal priorities keep their upload order.
    const ordered = [...compiled].sort((a, b) => b.priority - a.priority);
    const spec = {
      source,
      rules: compiled.map(({ name, priority, when, to, transform, stop }) => ({
        name,
        priority,
        when,
        to,
        transform,
        stop,
      })),
    };
    return new RuleSet(id, spec, ordered);
  }

  /** Whether publishes to `topic` are routed by this set. */
  covers(topic: string): boolean {
    return matchesTopicPattern(this.spec.source, topic);
  }

  /**
   * Adds, for each event of `block` (an uncompressed, verified EventBatch of
   * `count` events), the destinations its rules send it to. A publish to a
   * topic several sets cover uses `routeEvent` instead, so that the sets
   * share each event's parsed data.
   */
  route(block: Uint8Array, count: number, into: Destinations): void {
    const events = (this.#events ??= new RoutedEvents(this.dataPaths));
    events.open(block);
    try {
      for (let i = 0; i < count; i++) {
        events.select(i);
        this.routeEvent(events, i, count, into);
      }
    } finally {
      events.close();
    }
  }

  /**
   * Adds the destinations this set's rules send the selected event of
   * `events` to: event `index` of a block of `count`. Rules after a `stop`
   * that matched are not evaluated. `events` must know every data path of
   * `dataPaths`.
   */
  routeEvent(events: RoutedEvents, index: number, count: number, into: Destinations): void {
    const rules = this.#rules;
    for (let r = 0; r < rules.length; r++) {
      const rule = rules[r] as CompiledRule;
      if (rule.expression !== null && !rule.expression.matchesWith(events.reader, events.read)) continue;
      const to = rule.to;
      for (let t = 0; t < to.length; t++) {
        const topic = to[t] as string;
        const key = destinationKey(topic, rule.transform);
        let destination = into.get(key);
        if (destination === undefined) {
          destination = { topic, transform: rule.transform, events: new Uint8Array(Math.ceil(count / 8)) };
          into.set(key, destination);
        }
        const bitmap = destination.events;
        bitmap[index >> 3] = (bitmap[index >> 3] as number) | (1 << (index & 7));
      }
      if (rule.stop) return;
    }
  }

  /**
   * The rules one event (an EventBatch of one event) matches, as a publish
   * would apply them: read in place, its data parsed once for every rule.
   */
  dryRun(block: Uint8Array): DryRunResult {
    const result: DryRunResult = { matched: [], skipped: [], stoppedBy: null, to: [], errors: [] };
    let stoppedBy: string | null = null;
    const events = (this.#events ??= new RoutedEvents(this.dataPaths));
    events.open(block);
    events.select(0);
    try {
      for (const rule of this.#rules) {
        if (rule.expression !== null) {
          // One evaluation gives the verdict (the filter rule: Boolean true, no error) and the errors.
          const { value, errors } = rule.expression.evaluateWith(events.reader, events.read);
          for (const error of errors) result.errors.push({ rule: rule.name, error: error.message });
          if (value !== true || errors.length !== 0) continue;
        }
        if (stoppedBy !== null) {
          result.skipped.push(rule.name);
          continue;
        }
        const { name, priority, to, transform, stop } = rule;
        result.matched.push({ name, priority, to, transform, stop });
        for (const topic of rule.to) if (!result.to.includes(topic)) result.to.push(topic);
        if (rule.stop) stoppedBy = rule.name;
      }
    } finally {
      events.close();
    }
    return { ...result, stoppedBy };
  }
}

function compileRule(value: unknown, path: string, source: string, names: Set<string>): CompiledRule {
  if (!isObject(value)) throw new InvalidRuleSetError(path, null, 'a rule is a JSON object');
  const name = value['name'];
  if (typeof name !== 'string' || invalidRuleSetId(name) !== null)
    throw new InvalidRuleSetError(
      `${path}/name`,
      null,
      `a rule needs a name of 1 to ${NAME_CHARS_MAX} letters, digits, ".", "-" and "_"`,
    );
  const fail = (field: string, detail: string, cause?: CesqlError): InvalidRuleSetError =>
    new InvalidRuleSetError(`${path}${field}`, name, detail, cause);
  if (names.has(name)) throw fail('/name', 'another rule of the set has this name');
  names.add(name);
  for (const key of Object.keys(value)) {
    if (RULE_FIELDS.has(key)) continue;
    throw fail(`/${key}`, 'unknown field; a rule has name, priority, when, to, transform and stop');
  }
  const priority = value['priority'] ?? 0;
  if (
    !Number.isInteger(priority) ||
    (priority as number) < PRIORITY_MIN ||
    (priority as number) > PRIORITY_MAX
  )
    throw fail('/priority', 'priority must be a 32-bit integer');
  const stop = value['stop'] ?? false;
  if (typeof stop !== 'boolean') throw fail('/stop', 'stop must be true or false');
  const when = value['when'] ?? null;
  let expression: CompiledExpression | null = null;
  if (when !== null) {
    if (typeof when !== 'string' || when.length === 0 || when.length > WHEN_CHARS_MAX)
      throw fail('/when', `when must be a CESQL expression of 1 to ${WHEN_CHARS_MAX} characters`);
    try {
      expression = compile(when);
    } catch (error) {
      if (!(error instanceof CesqlError)) throw error;
      throw fail('/when', error.message, error);
    }
    if (expression.resultType === 'Integer' || expression.resultType === 'String')
      throw fail('/when', `the expression gives ${expression.resultType}, not Boolean`);
    if (expression.attributes.includes('data'))
      throw fail(
        '/when',
        'conditions read attributes, extensions and fields of JSON data (data.<path>), not data as a whole',
      );
  }
  const to = value['to'];
  if (!Array.isArray(to) || to.length === 0 || to.length > DESTINATIONS_MAX)
    throw fail('/to', `to must be an array of 1 to ${DESTINATIONS_MAX} topic names`);
  const seen = new Set<string>();
  for (const [i, topic] of to.entries()) {
    if (typeof topic !== 'string') throw fail(`/to/${i}`, 'a destination is a topic name');
    const problem = invalidTopicName(topic);
    if (problem !== null) throw fail(`/to/${i}`, `"${topic}" is not a topic name: ${problem}`);
    if (matchesTopicPattern(source, topic))
      throw fail(
        `/to/${i}`,
        `"${topic}" is covered by the source "${source}": a topic never routes to itself or its siblings`,
      );
    if (seen.has(topic)) throw fail(`/to/${i}`, `"${topic}" is named twice`);
    seen.add(topic);
  }
  const transform = value['transform'] ?? null;
  if (transform !== null) {
    if (typeof transform !== 'string')
      throw fail('/transform', 'transform must be a WASM transform, "name" or "name@version"');
    try {
      parseFilterRef(transform);
    } catch (error) {
      throw fail('/transform', (error as Error).message);
    }
  }
  return {
    name,
    priority: priority as number,
    when,
    to: to as string[],
    transform: transform as string | null,
    stop,
    expression,
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
