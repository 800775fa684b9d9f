import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  decodeFrame,
  encodeEventBatch,
  encodeFrame,
  isBrokerError,
  verifyBuffer,
  type Message,
} from '../../src/protocol/index.js';
import { tables } from '../../src/protocol/generated/layout.js';
import { seededRandom } from '../helpers/random.js';

const events = encodeEventBatch([
  { id: '1', source: '/s', type: 't', data: new Uint8Array([1, 2, 3]) },
  { id: '2', source: '/s', type: 't', extensions: [{ name: 'n', kind: 'integer', value: 5 }] },
]);

const seeds: readonly Message[] = [
  { type: 'Hello', minVersion: 1, maxVersion: 2, clientName: 'fuzz', authToken: 'token' },
  {
    type: 'PublishBatch',
    topic: 'orders',
    key: new Uint8Array([1, 2]),
    partition: 1,
    ack: 'durable',
    producerId: 5,
    sequence: 3,
    eventCount: 2,
    compression: 'none',
    uncompressedBytes: 0,
    events,
  },
  { type: 'PublishAck', topic: 'orders', offsets: [{ partition: 1, baseOffset: 3, lastOffset: 4 }] },
  {
    type: 'TopicList',
    topics: [
      {
        type: 'TopicDescription',
        name: 'a',
        partitions: [{ partition: 0, startOffset: 0, endOffset: 1 }],
        config: { k: 'v' },
      },
    ],
  },
  { type: 'Error', code: 3, message: 'nope' },
  { type: 'SetSubscriptionFilter', name: 'billing', filter: '{"wasm":"gate@2"}' },
  { type: 'UpdateSubscription', subscriptionId: 4, filter: '{"wasm":"gate@2","onTrap":"skip"}' },
];

/** Decoding either succeeds or throws MALFORMED_FRAME; any other exception is a verifier hole. */
function decodeSafely(frame: Uint8Array): 'ok' | 'rejected' {
  try {
    decodeFrame(frame);
    return 'ok';
  } catch (error) {
    if (isBrokerError(error, 'MALFORMED_FRAME')) return 'rejected';
    throw error;
  }
}

describe('protocol > verify', () => {
  it('accepts every frame the encoder produces', () => {
    for (const message of seeds) expect(verifyBuffer(encodeFrame(1, message))).toBeNull();
  });

  it('rejects every truncation of a valid frame that cuts into its data', () => {
    for (const message of seeds) {
      const frame = encodeFrame(1, message);
      for (let length = 0; length < frame.length; length++) {
        const cut = frame.slice(0, length);
        // Cutting only the alignment padding at the end loses nothing.
        if (decodeSafely(cut) === 'ok') expect(decodeFrame(cut).message).toEqual(message);
      }
      expect(decodeSafely(frame.slice(0, frame.length >> 1))).toBe('rejected');
    }
  });

  it('survives 50,000 random and mutated frames with only MALFORMED_FRAME errors', () => {
    const next = seededRandom(20261128);
    const outcomes = { ok: 0, rejected: 0 };
    for (let i = 0; i < 50_000; i++) {
      let frame: Uint8Array;
      if (i % 5 === 0) {
        frame = new Uint8Array(Math.floor(next() * 256));
        for (let j = 0; j < frame.length; j++) frame[j] = Math.floor(next() * 256);
      } else {
        frame = encodeFrame(i, seeds[i % seeds.length] as Message);
        const mutations = 1 + Math.floor(next() * 4);
        for (let m = 0; m < mutations; m++) {
          const at = Math.floor(next() * frame.length);
          // Mostly small nudges to offsets and lengths, sometimes arbitrary bytes.
          frame[at] =
            next() < 0.5 ? (frame[at] as number) + (next() < 0.5 ? 1 : 255) : Math.floor(next() * 256);
        }
      }
      outcomes[decodeSafely(frame)]++;
    }
    expect(outcomes.rejected).toBeGreaterThan(10_000);
    expect(outcomes.ok + outcomes.rejected).toBe(50_000);
  });

  it('bounds nesting depth and the number of objects', () => {
    const frame = encodeFrame(1, seeds[3] as Message);
    expect(verifyBuffer(frame, 'Frame', { depthMax: 2, objectsMax: 1000 })).toMatch(/nested deeper than 2/);
    expect(verifyBuffer(frame, 'Frame', { depthMax: 16, objectsMax: 3 })).toMatch(/more than 3 objects/);
  });

  it('refuses an UpdateSubscription or SetSubscriptionFilter without its required fields, by name', () => {
    // A Heartbeat (tag 30) for subscription 0 is an empty table (0 is the default, left out):
    // retagged, it is an UpdateSubscription (33) or a SetSubscriptionFilter (32) with no fields.
    const heartbeat = encodeFrame(0x01010101, { type: 'Heartbeat', subscriptionId: 0 });
    const reasons = (tag: number): (string | null)[] =>
      [...heartbeat.keys()]
        .filter((i) => heartbeat[i] === 30)
        .map((i) => {
          const copy = heartbeat.slice();
          copy[i] = tag;
          return verifyBuffer(copy);
        });
    expect(reasons(33)).toContain('UpdateSubscription.filter: required field missing');
    expect(reasons(32)).toContain('SetSubscriptionFilter.name: required field missing');
  });

  it('reports a missing required field by name', () => {
    // An EventBatch whose root table has no fields at all: a 4-byte vtable.
    const empty = new Uint8Array([8, 0, 0, 0, 4, 0, 4, 0, 4, 0, 0, 0]);
    expect(verifyBuffer(empty, 'EventBatch')).toBe('EventBatch.events: required field missing');
  });
});

describe('protocol > generated layout', () => {
  it('names the same slots as the accessors flatc generated, for every table', () => {
    const source = fs.readFileSync(new URL('../../src/protocol/generated/eddy.ts', import.meta.url), 'utf8');
    for (const [table, fields] of Object.entries(tables)) {
      const body = source.split(/^export class /m).find((part) => part.startsWith(`${table} {`));
      expect(body, table).toBeDefined();
      const slotCount = Number(/startObject\((\d+)\)/.exec(body as string)?.[1]);
      const generated = [...(body as string).matchAll(/builder\.addField\w+\((\d+),/g)].map((m) =>
        Number(m[1]),
      );
      const layout = fields.flatMap((field) =>
        field.kind === 'union' ? [field.slot, field.slot + 1] : [field.slot],
      );
      expect(layout, table).toEqual(generated);
      expect(layout.length, table).toBe(slotCount);
    }
  });
});

describe('protocol > verify > offsets the JS runtime reads as signed', () => {
  it('rejects a vtable larger than 0x7fff bytes and a field offset above 0x7fff', () => {
    const frame = encodeFrame(1, seeds[0] as Message);
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    const root = view.getUint32(0, true);
    const vtable = root - view.getInt32(root, true);
    const big = frame.slice();
    new DataView(big.buffer).setUint16(vtable, 0x8000, true);
    expect(verifyBuffer(big)).toMatch(/malformed vtable|out of bounds/);
    const farField = frame.slice();
    new DataView(farField.buffer).setUint16(vtable + 4, 0x8004, true);
    expect(verifyBuffer(farField)).toMatch(/out of range/);
  });
});
