/**
 * Filter benchmark: evaluations per second of compiled CESQL expressions and
 * of Subscriptions API dialect filters, on one core, over a fixed rotation of
 * events (some matching, some not, some lacking the attributes a filter
 * reads): as plain objects, and stored — the same events in one event block,
 * filtered as the broker filters a delivery (`SubscriptionFilter.keepEvents`,
 * attributes read from the bytes in place). Each scenario warms up, then runs
 * timed rounds of batches of evaluations; the result is the median round.
 *
 * The target is 5,000,000 evaluations/s for the `simple` expression.
 */
import { SubscriptionFilter } from '../src/broker/subscription-filter.js';
import { compileFilter } from '../src/filters/dialects.js';
import { compile } from '../src/filters/cesql.js';
import { encodeEventBatch, keptCount, type EventFields, type ExtensionField } from '../src/protocol/index.js';

export interface FilterBenchOptions {
  /** Timed duration of each round. */
  readonly durationMs: number;
  /** Untimed run before the rounds, so the JIT has compiled the closures. */
  readonly warmupMs: number;
  readonly rounds: number;
}

export const defaultFilterBenchOptions: FilterBenchOptions = { durationMs: 1000, warmupMs: 300, rounds: 3 };

export interface FilterBenchResult {
  readonly name: string;
  readonly params: Readonly<Record<string, string | number>>;
  readonly evalsPerSec: number;
  /** Share of the events the filter matched, to show the scenario exercised both outcomes. */
  readonly matchRatio: number;
  readonly evalsPerSecRounds: readonly number[];
}

type Event = Readonly<Record<string, unknown>>;

const expressions = {
  simple: "type = 'x' AND subject LIKE 'a%'",
  complex:
    "(type IN ('com.example.order.created', 'com.example.order.updated') AND source LIKE 'https://shop.example.com/%')" +
    " OR (INT(priority) > 5 AND LOWER(subject) LIKE '%urgent%' AND NOT EXISTS retired)",
  missingAttribute: "region = 'eu' AND type = 'x'",
} as const;

interface Scenario {
  readonly name: string;
  readonly params: Readonly<Record<string, string | number>>;
  /** Evaluates at least `evaluations` events; how many it evaluated and how many matched. */
  readonly run: (evaluations: number) => { evaluated: number; matched: number };
}

/** A scenario over the plain-object events, one evaluation per call of `evaluate`. */
function overObjects(
  name: string,
  params: Scenario['params'],
  evaluate: (event: Event) => boolean,
): Scenario {
  const input = events();
  const mask = input.length - 1; // input.length is a power of two
  let next = 0; // the rotation goes on from call to call
  return {
    name,
    params,
    run: (evaluations) => {
      let matched = 0;
      for (let i = 0; i < evaluations; i++) if (evaluate(input[(next + i) & mask]!)) matched++;
      next += evaluations;
      return { evaluated: evaluations, matched };
    },
  };
}

/** A scenario over the same events stored in one event block, filtered a block at a time. */
function overStoredBlock(expression: string): Scenario {
  const block = encodeEventBatch(events().map(storedFields));
  const count = events().length;
  const filter = SubscriptionFilter.parse(JSON.stringify({ sql: expression }));
  return {
    name: 'cesql-stored',
    params: { expression, batchEvents: count },
    run: (evaluations) => {
      let matched = 0;
      let evaluated = 0;
      for (; evaluated < evaluations; evaluated += count) {
        const kept = filter.keepEvents(block);
        matched += kept === null ? count : kept === 'none' ? 0 : keptCount(kept);
      }
      return { evaluated, matched };
    },
  };
}

function scenarios(): Scenario[] {
  const simple = compile(expressions.simple);
  const complex = compile(expressions.complex);
  const missing = compile(expressions.missingAttribute);
  const dialect = compileFilter({ all: [{ exact: { type: 'x' } }, { prefix: { subject: 'a' } }] });
  return [
    overObjects('cesql-matches', { expression: expressions.simple }, (e) => simple.matches(e)),
    overObjects(
      'cesql-evaluate',
      { expression: expressions.simple },
      (e) => simple.evaluate(e).value === true,
    ),
    overObjects('cesql-matches', { expression: expressions.complex }, (e) => complex.matches(e)),
    overObjects(
      'cesql-matches',
      { expression: expressions.missingAttribute, note: 'region absent from most events' },
      (e) => missing.matches(e),
    ),
    overObjects('dialect-matches', { filter: 'all: [exact type, prefix subject]' }, (e) =>
      dialect.matches(e),
    ),
    overStoredBlock(expressions.simple),
    overStoredBlock(expressions.complex),
    overStoredBlock(expressions.missingAttribute),
  ];
}

/** 64 events cycling through the combinations the expressions above care about. */
function events(): Event[] {
  const types = ['x', 'y', 'com.example.order.created', 'com.example.order.shipped'];
  const subjects = ['abc', 'bcd', 'URGENT: restock', 'routine'];
  return Array.from({ length: 64 }, (_, i) => ({
    specversion: '1.0',
    id: `event-${i}`,
    source: i % 3 === 0 ? 'https://shop.example.com/orders' : 'https://other.example.com/',
    type: types[i % types.length],
    subject: subjects[(i >> 2) % subjects.length],
    priority: String(i % 10),
    ...(i % 8 === 0 ? { region: 'eu' } : {}),
    ...(i % 16 === 0 ? { retired: true } : {}),
  }));
}

/** An event of `events()` as the broker stores it: `priority` and `region` String extensions, `retired` a Boolean one. */
function storedFields(event: Event): EventFields {
  const extensions: ExtensionField[] = [];
  for (const name of ['priority', 'region', 'retired'] as const) {
    const value = event[name];
    if (typeof value === 'string') extensions.push({ name, kind: 'string', value });
    else if (typeof value === 'boolean') extensions.push({ name, kind: 'boolean', value });
  }
  return {
    id: event['id'] as string,
    source: event['source'] as string,
    type: event['type'] as string,
    subject: event['subject'] as string,
    extensions,
  };
}

const batch = 10_000;

/** Runs `scenario` for about `durationMs`; evaluations per second and how many matched. */
function timedRound(scenario: Scenario, durationMs: number) {
  let evaluations = 0;
  let matched = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < durationMs) {
    const done = scenario.run(batch);
    evaluations += done.evaluated;
    matched += done.matched;
    elapsed = performance.now() - start;
  }
  return { evalsPerSec: (evaluations * 1000) / elapsed, matchRatio: matched / evaluations };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

export async function* runFilterBenchmark(options: FilterBenchOptions): AsyncGenerator<FilterBenchResult> {
  for (const scenario of scenarios()) {
    timedRound(scenario, options.warmupMs);
    const rounds: number[] = [];
    let matchRatio = 0;
    for (let round = 0; round < options.rounds; round++) {
      // Let timers and I/O of the caller run between rounds.
      await new Promise((resolve) => setTimeout(resolve, 0));
      const result = timedRound(scenario, options.durationMs);
      rounds.push(Math.round(result.evalsPerSec));
      matchRatio = result.matchRatio;
    }
    yield {
      name: scenario.name,
      params: scenario.params,
      evalsPerSec: median(rounds),
      matchRatio: Math.round(matchRatio * 1000) / 1000,
      evalsPerSecRounds: rounds,
    };
  }
}
