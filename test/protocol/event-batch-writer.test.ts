import { describe, expect, it } from 'vitest';
import {
  decodeEventBatch,
  encodeEventBatch,
  encodeEventBatchTransient,
  verifyBuffer,
  type EventFields,
  type ExtensionField,
} from '../../src/protocol/index.js';
import { fullEventFields } from '../helpers/event-fields.js';
import { seededRandom } from '../helpers/random.js';

/** What a reader sees of `event`: an absent specversion reads as "1.0". */
const asRead = (event: EventFields): EventFields => ({ ...event, specversion: event.specversion ?? '1.0' });

function randomEvents(seed: number, count: number): EventFields[] {
  const random = seededRandom(seed);
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)] as T;
  const text = (): string => pick(['', 'a', 'order', 'é€😀 unicode', 'x'.repeat(300), 'ü'.repeat(90)]);
  const maybe = <T>(value: () => T): T | undefined => (random() < 0.5 ? value() : undefined);
  const extension = (i: number): ExtensionField => {
    const name = `ext${i}`;
    switch (pick(['string', 'integer', 'boolean', 'binary', 'uri', 'uri-reference', 'timestamp'] as const)) {
      case 'integer':
        return { name, kind: 'integer', value: Math.floor(random() * 2 ** 32) - 2 ** 31 };
      case 'boolean':
        return { name, kind: 'boolean', value: random() < 0.5 };
      case 'binary':
        return {
          name,
          kind: 'binary',
          value: new Uint8Array(Math.floor(random() * 9)).map(() => random() * 256),
        };
      case 'uri':
        return { name, kind: 'uri', value: 'https://example.com/' + text() };
      case 'uri-reference':
        return { name, kind: 'uri-reference', value: text() };
      case 'timestamp':
        return { name, kind: 'timestamp', value: '2026-11-28T00:00:00Z' };
      case 'string':
        return { name, kind: 'string', value: text() };
    }
  };
  return Array.from({ length: count }, (_, i) => {
    const fields: EventFields = {
      id: `id-${i}-${text()}`,
      source: pick(['/a', '/b', 'ü/c']),
      type: pick(['t.one', 't.two']),
      ...(random() < 0.2 ? { specversion: pick(['1.0', '1.1']) } : {}),
      ...(maybe(() => ({ subject: text() })) ?? {}),
      ...(maybe(() => ({ time: pick(['2026-11-28T00:00:00Z', '2026-11-28T00:00:01Z']) })) ?? {}),
      ...(maybe(() => ({ datacontenttype: 'application/json' })) ?? {}),
      ...(maybe(() => ({ dataschema: 'https://example.com/s' })) ?? {}),
      ...(random() < 0.4
        ? { extensions: Array.from({ length: 1 + Math.floor(random() * 4) }, (_, k) => extension(k)) }
        : {}),
      ...(maybe(() => ({ data: new Uint8Array(Math.floor(random() * 200)).map(() => random() * 256) })) ??
        {}),
    };
    return fields;
  });
}

describe('protocol > event batch writer', () => {
  it('writes a batch every reader decodes back to the same events, and the verifier accepts', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const events = randomEvents(seed, 1 + (seed % 7) * 13);
      const block = encodeEventBatch(events);
      expect(verifyBuffer(block, 'EventBatch')).toBeNull();
      expect(decodeEventBatch(block)).toEqual(events.map(asRead));
    }
  });

  it('writes every attribute and every extension kind', () => {
    const block = encodeEventBatch([fullEventFields, { ...fullEventFields, id: 'a-2', subject: 'ü' }]);
    expect(verifyBuffer(block, 'EventBatch')).toBeNull();
    expect(decodeEventBatch(block)).toEqual([
      asRead(fullEventFields),
      asRead({ ...fullEventFields, id: 'a-2', subject: 'ü' }),
    ]);
  });

  it('shares a repeated source, type and time, so a batch of alike events stays small', () => {
    const one = {
      id: 'i',
      source: '/a-long-source/that/repeats',
      type: 'com.example.repeated.type',
      time: '2026-11-28T00:00:00Z',
    };
    const single = encodeEventBatch([one]).length;
    const hundred = encodeEventBatch(Array.from({ length: 100 }, (_, i) => ({ ...one, id: `i${i}` }))).length;
    // Each further event adds its table and its id, not another copy of the shared strings.
    expect(hundred - single).toBeLessThan(99 * 40);
  });

  it('grows past its first buffer for large batches, and the transient result is reused by the next call', () => {
    const big = Array.from({ length: 300 }, (_, i) => ({
      id: `e${i}`,
      source: '/s',
      type: 't',
      data: new Uint8Array(1000).fill(i),
    }));
    const block = encodeEventBatchTransient(big);
    expect(block.length).toBeGreaterThan(300_000);
    expect(decodeEventBatch(block).map((e) => e.data?.[0])).toEqual(big.map((_, i) => i & 0xff));
    const small = encodeEventBatchTransient([{ id: 'x', source: '/s', type: 't' }]);
    expect(decodeEventBatch(small)).toEqual([{ id: 'x', source: '/s', type: 't', specversion: '1.0' }]);
  });

  it('writes batches of more events than it has room to track, then smaller ones, with mixed attribute sets', () => {
    // 5,000 events: past the per-event tables the writer keeps between batches (1,024 at first).
    const events = Array.from({ length: 5_000 }, (_, i) => ({
      id: `e${i}`,
      source: `/s${i % 3}`,
      type: 't',
      ...(i % 2 === 0 ? { subject: `sub${i}` } : {}),
      ...(i % 5 === 0 ? { time: '2026-11-29T10:00:00Z' } : {}),
    }));
    const expected = events.map((event) => ({ specversion: '1.0', ...event }));
    expect(decodeEventBatch(encodeEventBatchTransient(events))).toEqual(expected);
    expect(decodeEventBatch(encodeEventBatchTransient(events.slice(0, 7)))).toEqual(expected.slice(0, 7));
  });
});
