/**
 * Filter benchmark: evaluations per second of compiled CESQL expressions and
 * of Subscriptions API dialect filters, on one core, over a fixed rotation of
 * plain-object events (some matching, some not, some lacking the attributes
 * a filter reads). Each scenario warms up, then runs timed rounds of batches
 * of evaluations; the result is the median round.
 *
 * The target is 5,000,000 evaluations/s for the `simple` expression.
 */
import { compileFilter } from '../src/filters/dialects.js';
import { compile } from '../src/filters/cesql.js';

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
  readonly evaluate: (event: Event) => boolean;
}

function scenarios(): Scenario[] {
  const simple = compile(expressions.simple);
  const complex = compile(expressions.complex);
  const missing = compile(expressions.missingAttribute);
  const dialect = compileFilter({ all: [{ exact: { type: 'x' } }, { prefix: { subject: 'a' } }] });
  return [
    { name: 'cesql-matches', params: { expression: expressions.simple }, evaluate: (e) => simple.matches(e) },
    {
      name: 'cesql-evaluate',
      params: { expression: expressions.simple },
      evaluate: (e) => simple.evaluate(e).value === true,
    },
    {
      name: 'cesql-matches',
      params: { expression: expressions.complex },
      evaluate: (e) => complex.matches(e),
    },
    {
      name: 'cesql-matches',
      params: { expression: expressions.missingAttribute, note: 'region absent from most events' },
      evaluate: (e) => missing.matches(e),
    },
    {
      name: 'dialect-matches',
      params: { filter: 'all: [exact type, prefix subject]' },
      evaluate: (e) => dialect.matches(e),
    },
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

const batch = 10_000;

/** Runs `scenario` for about `durationMs`; evaluations per second and how many matched. */
function timedRound(scenario: Scenario, input: readonly Event[], durationMs: number) {
  const mask = input.length - 1; // input.length is a power of two
  let evaluations = 0;
  let matched = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < durationMs) {
    for (let i = 0; i < batch; i++) if (scenario.evaluate(input[(evaluations + i) & mask]!)) matched++;
    evaluations += batch;
    elapsed = performance.now() - start;
  }
  return { evalsPerSec: (evaluations * 1000) / elapsed, matchRatio: matched / evaluations };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

export async function* runFilterBenchmark(options: FilterBenchOptions): AsyncGenerator<FilterBenchResult> {
  const input = events();
  for (const scenario of scenarios()) {
    timedRound(scenario, input, options.warmupMs);
    const rounds: number[] = [];
    let matchRatio = 0;
    for (let round = 0; round < options.rounds; round++) {
      // Let timers and I/O of the caller run between rounds.
      await new Promise((resolve) => setTimeout(resolve, 0));
      const result = timedRound(scenario, input, options.durationMs);
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
