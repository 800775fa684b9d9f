import { describe, expect, it } from 'vitest';
import { InvalidRuleSetError, RuleSet, type Destinations } from '../../src/broker/index.js';
import { dataParseCount } from '../../src/filters/cesql/data.js';
import { encodeEventBatch, isKept, type EventFields } from '../../src/protocol/index.js';

const event = (id: string, extra: Partial<EventFields> = {}): EventFields => ({
  id,
  source: '/shop',
  type: 'order.created',
  ...extra,
});
const region = (value: string): NonNullable<EventFields['extensions']> => [
  { name: 'region', kind: 'string', value },
];

function invalidity(id: string, value: unknown): InvalidRuleSetError {
  try {
    RuleSet.compile(id, value);
  } catch (error) {
    if (error instanceof InvalidRuleSetError) return error;
    throw error;
  }
  throw new Error('expected the rule set to be refused');
}

/** Where each event of `events` goes: destination (`topic` or `topic via transform`) → event indexes. */
function routeOf(rules: RuleSet, events: EventFields[]): Record<string, number[]> {
  const into: Destinations = new Map();
  rules.route(encodeEventBatch(events), events.length, into);
  const routed: Record<string, number[]> = {};
  for (const { topic, transform, events: bitmap } of into.values())
    routed[transform === null ? topic : `${topic} via ${transform}`] = events.flatMap((_, i) =>
      isKept(bitmap, i) ? [i] : [],
    );
  return routed;
}

describe('broker > routing > rule set > validation', () => {
  it('refuses a CESQL condition that does not parse, naming the rule, the path and the position', () => {
    const error = invalidity('orders', {
      source: 'orders',
      rules: [
        { name: 'ok', to: ['audit'] },
        { name: 'broken', when: "type = 'a' AND", to: ['audit'] },
      ],
    });
    expect(error.path).toBe('/rules/1/when');
    expect(error.rule).toBe('broken');
    expect(error.position).toMatchObject({ line: 1 });
    expect(error.position?.column).toBeGreaterThan(10);
    expect(error.message).toContain('rule "broken"');
    expect(error.message).toMatch(/line 1, column \d+/);
  });

  it('refuses an unknown function at compile time with its position', () => {
    const error = invalidity('orders', {
      source: 'orders',
      rules: [{ name: 'r', when: 'NOPE(type)', to: ['a'] }],
    });
    expect(error.position).toMatchObject({ line: 1, column: 1 });
  });

  it('refuses conditions that can never be Boolean, and conditions that read data as a whole', () => {
    expect(invalidity('x', { source: 'o', rules: [{ name: 'r', when: "'text'", to: ['a'] }] }).path).toBe(
      '/rules/0/when',
    );
    expect(
      invalidity('x', { source: 'o', rules: [{ name: 'r', when: 'data = 1', to: ['a'] }] }).message,
    ).toContain('not data as a whole');
  });

  it('refuses unknown fields in the set and in rules', () => {
    expect(invalidity('x', { source: 'o', rules: [{ name: 'r', to: ['a'] }], extra: 1 }).path).toBe('/extra');
    expect(invalidity('x', { source: 'o', rules: [{ name: 'r', to: ['a'], prio: 1 }] }).path).toBe(
      '/rules/0/prio',
    );
  });

  it('takes a transform reference on a rule and refuses one that is not a filter reference', () => {
    const rules = RuleSet.compile('x', {
      source: 'o',
      rules: [{ name: 'r', to: ['a'], transform: 'mask@2' }],
    });
    expect(rules.spec.rules[0]?.transform).toBe('mask@2');
    for (const transform of ['mask@0', 'bad name', 7, ''])
      expect(invalidity('x', { source: 'o', rules: [{ name: 'r', to: ['a'], transform }] }).path).toBe(
        '/rules/0/transform',
      );
  });

  it('refuses a destination equal to the source or covered by its pattern', () => {
    expect(invalidity('x', { source: 'orders', rules: [{ name: 'r', to: ['audit', 'orders'] }] }).path).toBe(
      '/rules/0/to/1',
    );
    expect(invalidity('x', { source: 'orders.*', rules: [{ name: 'r', to: ['orders.big'] }] }).path).toBe(
      '/rules/0/to/0',
    );
  });

  it('refuses an empty or missing to, bad topic names, duplicates and system topics', () => {
    expect(invalidity('x', { source: 'o', rules: [{ name: 'r', to: [] }] }).path).toBe('/rules/0/to');
    expect(invalidity('x', { source: 'o', rules: [{ name: 'r' }] }).path).toBe('/rules/0/to');
    expect(invalidity('x', { source: 'o', rules: [{ name: 'r', to: ['bad name'] }] }).path).toBe(
      '/rules/0/to/0',
    );
    expect(invalidity('x', { source: 'o', rules: [{ name: 'r', to: ['a', 'a'] }] }).path).toBe(
      '/rules/0/to/1',
    );
    expect(invalidity('x', { source: 'o', rules: [{ name: 'r', to: ['$sys.filters'] }] }).path).toBe(
      '/rules/0/to/0',
    );
    expect(invalidity('x', { source: '$sys.filters', rules: [{ name: 'r', to: ['a'] }] }).path).toBe(
      '/source',
    );
  });

  it('refuses duplicate rule names, bad priorities, stops and ids, a bad source and an empty rule list', () => {
    const two = [
      { name: 'r', to: ['a'] },
      { name: 'r', to: ['b'] },
    ];
    expect(invalidity('x', { source: 'o', rules: two }).path).toBe('/rules/1/name');
    expect(invalidity('x', { source: 'o', rules: [{ name: 'r', to: ['a'], priority: 1.5 }] }).path).toBe(
      '/rules/0/priority',
    );
    expect(invalidity('x', { source: 'o', rules: [{ name: 'r', to: ['a'], stop: 'yes' }] }).path).toBe(
      '/rules/0/stop',
    );
    expect(invalidity('bad id', { source: 'o', rules: [{ name: 'r', to: ['a'] }] }).path).toBe('');
    expect(invalidity('x', { source: 'o.>.p', rules: [{ name: 'r', to: ['a'] }] }).path).toBe('/source');
    expect(invalidity('x', { source: 'o', rules: [] }).path).toBe('/rules');
  });

  it('fills in defaults: priority 0, no condition, no stop', () => {
    const rules = RuleSet.compile('x', { source: 'orders', rules: [{ name: 'all', to: ['audit'] }] });
    expect(rules.spec.rules).toEqual([
      { name: 'all', priority: 0, when: null, to: ['audit'], transform: null, stop: false },
    ]);
  });
});

describe('broker > routing > rule set > transforms', () => {
  it('makes one copy per destination and transform: an event two rules send one way is copied once', () => {
    const rules = RuleSet.compile('x', {
      source: 'orders',
      rules: [
        { name: 'masked', when: "region = 'eu'", to: ['out', 'audit'], transform: 'mask@1' },
        { name: 'plain', to: ['out'] },
        { name: 'masked-again', when: "region = 'eu'", to: ['out'], transform: 'mask@1' },
      ],
    });
    const events = [event('1', { extensions: region('eu') }), event('2', { extensions: region('us') })];
    expect(routeOf(rules, events)).toEqual({
      'out via mask@1': [0],
      'audit via mask@1': [0],
      out: [0, 1],
    });
  });
});

describe('broker > routing > rule set > content-based routing on data', () => {
  const json = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

  it('routes on fields of JSON data, and never on data that is not JSON', () => {
    const rules = RuleSet.compile('x', {
      source: 'orders',
      rules: [{ name: 'big', when: "data.total > 100 AND data.customer.tier = 'gold'", to: ['big'] }],
    });
    const events = [
      event('1', { data: json({ total: 250, customer: { tier: 'gold' } }) }),
      event('2', { data: json({ total: 50, customer: { tier: 'gold' } }) }),
      event('3', { data: json({ total: 250 }) }),
      event('4', { datacontenttype: 'text/plain', data: json({ total: 250, customer: { tier: 'gold' } }) }),
      event('5', {
        datacontenttype: 'application/vnd.shop+json',
        data: json({ total: 101, customer: { tier: 'gold' } }),
      }),
    ];
    expect(routeOf(rules, events)).toEqual({ big: [0, 4] });
  });

  it('parses the data of each event once, however many rules read it', () => {
    const rules = RuleSet.compile('x', {
      source: 'orders',
      rules: [
        { name: 'big', when: 'data.total > 100', to: ['big'] },
        { name: 'gold', when: "data.customer.tier = 'gold'", to: ['gold'] },
        { name: 'sku', when: "data.items.0.sku LIKE 'A-%'", to: ['a-items'] },
        { name: 'eu', when: "data.region = 'eu' OR data.region = 'uk'", to: ['europe'] },
        { name: 'small', when: 'INT(data.total) <= 100', to: ['small'] },
      ],
    });
    const events = [
      event('1', { data: json({ total: 250, customer: { tier: 'gold' }, region: 'eu' }) }),
      event('2', { data: json({ total: 50, items: [{ sku: 'A-1' }], region: 'us' }) }),
      event('3', { data: json({ total: 101, customer: { tier: 'silver' }, region: 'uk' }) }),
      event('4', { datacontenttype: 'text/plain', data: json({ total: 250 }) }), // not JSON: never parsed
      event('5'), // no data at all
    ];
    const before = dataParseCount();
    expect(routeOf(rules, events)).toEqual({
      big: [0, 2],
      gold: [0],
      'a-items': [1],
      europe: [0, 2],
      small: [1],
    });
    expect(dataParseCount() - before).toBe(3);
  });

  it('parses no data of an event whose conditions stop short of it, nor of rules that read none', () => {
    const rules = RuleSet.compile('x', {
      source: 'orders',
      rules: [
        { name: 'refunds', when: "type = 'order.refunded' AND data.total > 100", to: ['big-refunds'] },
        { name: 'eu', when: "region = 'eu'", to: ['orders-eu'] },
        { name: 'all', to: ['audit'] },
      ],
    });
    const data = json({ total: 250 });
    const events = [
      event('1', { data, extensions: region('eu') }),
      event('2', { data, type: 'order.refunded' }),
      event('3', { data }),
    ];
    const before = dataParseCount();
    expect(routeOf(rules, events)).toEqual({
      'big-refunds': [1],
      'orders-eu': [0],
      audit: [0, 1, 2],
    });
    expect(dataParseCount() - before).toBe(1); // the refund's, read by the one rule that got that far
    const attributesOnly = RuleSet.compile('y', {
      source: 'orders',
      rules: [{ name: 'eu', when: "region = 'eu'", to: ['orders-eu'] }],
    });
    expect(attributesOnly.dataPaths).toEqual([]);
    expect(routeOf(attributesOnly, events)).toEqual({ 'orders-eu': [0] });
    expect(dataParseCount() - before).toBe(1);
  });

  it('dry-runs a condition on data as a publish would apply it', () => {
    const rules = RuleSet.compile('x', {
      source: 'orders',
      rules: [{ name: 'big', when: 'data.total > 100', to: ['big'] }],
    });
    const fields = event('1', { data: json({ total: 101 }) });
    const before = dataParseCount();
    const result = rules.dryRun(encodeEventBatch([fields]));
    expect(result.matched.map((m) => m.name)).toEqual(['big']);
    expect(result.errors).toEqual([]);
    expect(dataParseCount() - before).toBe(1);
  });
});

describe('broker > routing > rule set > evaluation', () => {
  const rules = RuleSet.compile('orders', {
    source: 'orders.*',
    rules: [
      { name: 'everything', priority: -1, to: ['audit'] },
      { name: 'eu', priority: 5, when: "region = 'eu'", to: ['orders-eu'] },
      {
        name: 'big-eu',
        priority: 10,
        when: "region = 'eu' AND subject LIKE 'big%'",
        to: ['orders-big'],
        stop: true,
      },
      { name: 'eu-again', priority: 5, when: "region = 'eu'", to: ['orders-eu-copy'] },
    ],
  });

  it('applies rules by priority, ties in upload order, and stop keeps lower rules off an event', () => {
    const events = [
      event('1', { extensions: region('eu'), subject: 'big order' }),
      event('2', { extensions: region('eu'), subject: 'small' }),
      event('3', { extensions: region('us') }),
    ];
    expect(routeOf(rules, events)).toEqual({
      'orders-big': [0],
      'orders-eu': [1],
      'orders-eu-copy': [1],
      audit: [1, 2],
    });
  });

  it('matches extension (header) values and context attributes; a missing attribute does not match', () => {
    const byHeader = RuleSet.compile('h', {
      source: 'orders',
      rules: [{ name: 'retry', when: 'attempt > 2 AND urgent', to: ['slow'] }],
    });
    const events = [
      event('1', {
        extensions: [
          { name: 'attempt', kind: 'integer', value: 3 },
          { name: 'urgent', kind: 'boolean', value: true },
        ],
      }),
      event('2', { extensions: [{ name: 'attempt', kind: 'integer', value: 3 }] }),
      event('3'),
    ];
    expect(routeOf(byHeader, events)).toEqual({ slow: [0] });
  });

  it('covers topics by name or pattern', () => {
    expect(rules.covers('orders.eu')).toBe(true);
    expect(rules.covers('orders.eu.de')).toBe(false);
    expect(rules.covers('orders')).toBe(false);
    const deep = RuleSet.compile('d', { source: 'orders.>', rules: [{ name: 'r', to: ['audit'] }] });
    expect(deep.covers('orders.eu.de')).toBe(true);
    const exact = RuleSet.compile('e', { source: 'orders', rules: [{ name: 'r', to: ['audit'] }] });
    expect([exact.covers('orders'), exact.covers('orders.eu')]).toEqual([true, false]);
  });

  it('dry-runs one event: matched rules in order, the ones a stop skipped, destinations and errors', () => {
    const fields = event('1', { extensions: region('eu'), subject: 'big order' });
    const result = rules.dryRun(encodeEventBatch([fields]));
    expect(result.matched.map((m) => m.name)).toEqual(['big-eu']);
    expect(result.skipped).toEqual(['eu', 'eu-again', 'everything']);
    expect(result.stoppedBy).toBe('big-eu');
    expect(result.to).toEqual(['orders-big']);
    const plain = event('2');
    const missing = rules.dryRun(encodeEventBatch([plain]));
    expect(missing.matched.map((m) => m.name)).toEqual(['everything']);
    expect(missing.errors.map((e) => e.rule)).toContain('eu');
    expect(missing.errors[0]?.error).toContain('missing attribute');
  });
});
