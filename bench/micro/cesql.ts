/**
 * CESQL (src/filters/cesql.ts):
 *
 * - `cesql-compile`: `compile(expression)`: parse, type-check and build the closures, once per
 *   subscription (or per filter change).
 * - `cesql-stored`: the compiled expression over stored events, per event: a subscription's
 *   filter (`SubscriptionFilter.keepEvents`, as the broker runs it before a delivery) over an
 *   event block of 100 events, reading each attribute the expression needs from the block's
 *   bytes in place and setting the batch's bitmap of kept events. About half of the events
 *   match either expression, and some lack the attributes the complex one reads.
 */
import { SubscriptionFilter } from '../../src/broker/subscription-filter.js';
import { compile } from '../../src/filters/cesql.js';
import { encodeEventBatch, type EventFields, type ExtensionField } from '../../src/protocol/index.js';
import type { MicroArea, MicroCase } from './case.js';

const BATCH_EVENTS = 100;
const EVENT_BYTES = 100;

export const cesqlExpressions = {
  simple: "type = 'x' AND subject LIKE 'a%'",
  complex:
    "(type IN ('com.example.order.created', 'com.example.order.updated') AND source LIKE 'https://shop.example.com/%')" +
    " OR (INT(priority) > 5 AND LOWER(subject) LIKE '%urgent%' AND NOT EXISTS retired)",
} as const;

/** Events cycling through what the expressions above look at, with `EVENT_BYTES` of data. */
function storedEvents(): EventFields[] {
  const types = ['x', 'com.example.order.created', 'y', 'com.example.order.shipped'];
  const subjects = ['abc', 'URGENT: restock', 'bcd', 'routine'];
  return Array.from({ length: BATCH_EVENTS }, (_, i) => {
    const extensions: ExtensionField[] = [{ name: 'priority', kind: 'string', value: String(i % 10) }];
    if (i % 16 === 0) extensions.push({ name: 'retired', kind: 'boolean', value: true });
    return {
      id: `event-${String(i).padStart(6, '0')}`,
      source: i % 3 === 0 ? 'https://shop.example.com/orders' : 'https://other.example.com/',
      type: types[i % types.length] as string,
      specversion: '1.0',
      subject: subjects[(i >> 1) % subjects.length] as string,
      time: '2026-01-02T03:04:05.000Z',
      datacontenttype: 'application/octet-stream',
      extensions,
      data: new Uint8Array(EVENT_BYTES).fill(i),
    };
  });
}

export async function cesqlArea(): Promise<MicroArea> {
  const block = encodeEventBatch(storedEvents());
  const cases: MicroCase[] = [];
  for (const [kind, expression] of Object.entries(cesqlExpressions)) {
    cases.push({
      name: 'cesql-compile',
      params: { expression: kind, op: 'compile' },
      opsPerCall: 1,
      run: () => compile(expression).attributes.length,
    });
  }
  for (const [kind, expression] of Object.entries(cesqlExpressions)) {
    const filter = SubscriptionFilter.parse(JSON.stringify({ sql: expression }));
    const kept = filter.keepEvents(block);
    if (kept === null || kept === 'none')
      throw new Error(`${kind}: expected some events to match, not ${kept ?? 'all'}`);
    cases.push({
      name: 'cesql-stored',
      params: { expression: kind, eventBytes: EVENT_BYTES, batchEvents: BATCH_EVENTS, op: 'event' },
      opsPerCall: BATCH_EVENTS,
      run: () => filter.keepEvents(block),
    });
  }
  return { cases, close: async () => {} };
}
