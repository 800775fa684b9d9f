import { describe, expect, it } from 'vitest';
import { EventBlockChecker, fromEventFields, validateEvent } from '../../src/events/index.js';
import {
  decodeEventBatch,
  encodeEventBatch,
  type EventFields,
  type ExtensionField,
} from '../../src/protocol/index.js';
import { fullEventFields } from '../helpers/event-fields.js';
import { seededRandom } from '../helpers/random.js';

const valid = fullEventFields;

/** What the reference validator says: the index of the first invalid event, or null. */
function reference(events: readonly EventFields[]): number | null {
  const decoded = decodeEventBatch(encodeEventBatch(events));
  const index = decoded.findIndex((fields) => validateEvent(fromEventFields(fields)).length > 0);
  return index === -1 ? null : index;
}

describe('events > block-check', () => {
  const checker = new EventBlockChecker();

  it('accepts a block of valid events, repeated attributes included', () => {
    const events = Array.from({ length: 50 }, (_, i) => ({ ...valid, id: `a-${i}` }));
    expect(checker.firstInvalid(encodeEventBatch(events))).toBeNull();
  });

  it.each<[string, Partial<EventFields>]>([
    ['an empty id', { id: '' }],
    ['a source that is not a URI-reference', { source: 'not a uri' }],
    ['a time without an offset', { time: '2026-01-02T03:04:05' }],
    ['a bad media type', { datacontenttype: 'json' }],
    ['a relative dataschema', { dataschema: '/schema.json' }],
    ['specversion 0.3', { specversion: '0.3' }],
    ['a control character in the type', { type: 'a\u0007b' }],
    ['a noncharacter in the subject', { subject: 'x\ufdd0' }],
    ['an empty subject', { subject: '' }],
    ['an upper-case extension name', { extensions: [{ name: 'Bad', kind: 'string', value: 'v' }] }],
    [
      'an extension named like a context attribute',
      { extensions: [{ name: 'source', kind: 'string', value: 'v' }] },
    ],
    ['an empty correlationid', { extensions: [{ name: 'correlationid', kind: 'string', value: '' }] }],
    ['a malformed traceparent', { extensions: [{ name: 'traceparent', kind: 'string', value: '00-xyz' }] }],
    [
      'a correlationid that is not a string',
      { extensions: [{ name: 'correlationid', kind: 'integer', value: 1 }] },
    ],
    [
      'a deliverat that is not a timestamp',
      { extensions: [{ name: 'deliverat', kind: 'string', value: 'soon' }] },
    ],
    [
      'a deliverat without a time offset',
      { extensions: [{ name: 'deliverat', kind: 'timestamp', value: '2030-01-01T00:00:00' }] },
    ],
    ['a deliverat that is an Integer', { extensions: [{ name: 'deliverat', kind: 'integer', value: 5 }] }],
  ])('rejects %s at its index, with the reference validator issues', (_, change) => {
    const events = [valid, { ...valid, id: 'a-2' }, { ...valid, id: 'a-3', ...change }];
    const block = encodeEventBatch(events);
    const report = checker.firstInvalid(block);
    expect(report?.index).toBe(2);
    expect(report?.issues).toEqual(validateEvent(fromEventFields(decodeEventBatch(block)[2]!)));
    expect(report?.issues.length).toBeGreaterThan(0);
  });

  it('notes the latest deliverat of a valid block, as a Timestamp or a String, and 0 without one', () => {
    const at = (value: string, kind: 'string' | 'timestamp' = 'timestamp'): EventFields => ({
      ...valid,
      extensions: [{ name: 'deliverat', kind, value }],
    });
    const block = encodeEventBatch([
      at('2030-01-01T00:00:00Z'),
      at('2030-01-01T02:00:00.250+01:00', 'string'),
      valid,
      at('2029-12-31T23:59:59.999999Z'),
    ]);
    expect(checker.firstInvalid(block)).toBeNull();
    expect(checker.deliverAtMs).toBe(Date.UTC(2030, 0, 1, 1, 0, 0, 250));
    expect(checker.firstInvalid(encodeEventBatch([valid]))).toBeNull();
    expect(checker.deliverAtMs).toBe(0);
  });

  it('rejects attribute bytes that are not UTF-8, which decoding would hide', () => {
    const block = encodeEventBatch([{ ...valid, id: 'zzzz' }]);
    const at = Buffer.from(block).indexOf('zzzz');
    block[at + 1] = 0xff;
    expect(checker.firstInvalid(block)?.index).toBe(0);
  });

  it('rejects extensions that are not sorted by name or not unique', () => {
    const ext = (name: string): ExtensionField => ({ name, kind: 'string', value: 'v' });
    expect(
      checker.firstInvalid(encodeEventBatch([{ ...valid, extensions: [ext('b'), ext('a')] }]))?.index,
    ).toBe(0);
    expect(
      checker.firstInvalid(encodeEventBatch([{ ...valid, extensions: [ext('a'), ext('a')] }]))?.index,
    ).toBe(0);
    expect(
      checker.firstInvalid(encodeEventBatch([{ ...valid, extensions: [ext('a'), ext('b')] }])),
    ).toBeNull();
  });

  it('agrees with the reference validator on 3,000 random batches', () => {
    const next = seededRandom(11);
    const pick = <T>(values: readonly T[]): T => values[Math.floor(next() * values.length)] as T;
    // The first value of each pool is valid and drawn most of the time, so whole batches are often valid.
    const draw = <T>(values: readonly T[]): T => (next() < 0.85 ? (values[0] as T) : pick(values));
    const sources = [
      '/orders',
      'https://x.example/a?b=c#d',
      'urn:isbn:123',
      'a b',
      '',
      'http://[::1]:80/',
      '%zz',
    ];
    const times = [
      undefined,
      '2026-01-02T03:04:05Z',
      '2026-01-02T03:04:05.1-00:30',
      '2026-13-02T03:04:05Z',
      '1985-04-12T23:20:50.52Z',
      'now',
    ];
    const types = [
      't',
      'com.example.x',
      '',
      'tab\tbed',
      'ok\u00e9',
      'bad\u0085',
      'del\u007f',
      '\u0001first',
      '\u00e9 then ascii',
      'ascii, \u00e9, ascii, \u0000',
    ];
    const media = [
      undefined,
      'application/json',
      'text/plain; charset=utf-8',
      'nope',
      'a/b; c',
      'application/cloudevents+json',
    ];
    const schemas = [undefined, 'https://s.example/x.json', 'relative/x', 'urn:x:y'];
    const names = ['alpha', 'beta', 'correlationid', 'deliverat', 'traceparent', 'Upper', 'data', 'id', 'x1'];
    const values: ExtensionField['value'][] = [
      'v',
      '2030-01-02T03:04:05.6+02:00',
      '',
      'tab\t',
      7,
      true,
      new Uint8Array([1]),
      '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    ];
    let invalidBatches = 0;
    for (let round = 0; round < 3000; round++) {
      const events = Array.from({ length: 1 + Math.floor(next() * 4) }, (_, i): EventFields => {
        const extensionNames = [
          ...new Set(Array.from({ length: Math.floor(next() * 3) }, () => draw(names))),
        ].sort();
        const extensions = extensionNames.map((name): ExtensionField => {
          const value = draw(values);
          if (typeof value === 'number') return { name, kind: 'integer', value };
          if (typeof value === 'boolean') return { name, kind: 'boolean', value };
          if (value instanceof Uint8Array) return { name, kind: 'binary', value };
          return { name, kind: 'string', value };
        });
        const time = draw(times);
        const datacontenttype = draw(media);
        const dataschema = draw(schemas);
        return {
          id: next() < 0.95 ? `id-${i}` : '',
          source: draw(sources),
          type: draw(types),
          specversion: next() < 0.97 ? '1.0' : '0.3',
          ...(time === undefined ? {} : { time }),
          ...(datacontenttype === undefined ? {} : { datacontenttype }),
          ...(dataschema === undefined ? {} : { dataschema }),
          ...(extensions.length > 0 ? { extensions } : {}),
        };
      });
      const expected = reference(events);
      if (expected !== null) invalidBatches++;
      expect(checker.firstInvalid(encodeEventBatch(events))?.index ?? null, JSON.stringify(events)).toBe(
        expected,
      );
    }
    expect(invalidBatches).toBeGreaterThan(300);
    expect(invalidBatches).toBeLessThan(2900);
  });
});
