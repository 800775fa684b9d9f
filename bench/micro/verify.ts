/**
 * FlatBuffers verification with the TypeScript verifier (`verifyBuffer`, src/protocol/verify.ts),
 * per event: what the broker runs over every publish before it reads a field.
 *
 * - `verify-frame`: the `Frame` of a `PublishBatch` of 100 events; its event block is a byte
 *   vector there, so this is the envelope alone.
 * - `verify-event-batch`: the event block itself (`EventBatch`): every event table, string and
 *   data vector, as `countEventBatch` verifies it on the publish path.
 */
import { encodeEventBatch, encodeFrame, verifyBuffer } from '../../src/protocol/index.js';
import { sdkEvents, type MicroArea } from './case.js';
import { publishMessage } from './frame.js';

const BATCH_EVENTS = 100;
const EVENT_BYTES = 100;

function verified(bytes: Uint8Array, table: 'Frame' | 'EventBatch'): () => unknown {
  const reason = verifyBuffer(bytes, table);
  if (reason !== null) throw new Error(`the sample ${table} does not verify: ${reason}`);
  return () => {
    if (verifyBuffer(bytes, table) !== null) throw new Error(`${table} stopped verifying`);
  };
}

export async function verifyArea(): Promise<MicroArea> {
  const block = encodeEventBatch(sdkEvents(BATCH_EVENTS, EVENT_BYTES));
  const frame = encodeFrame(1, publishMessage(block, BATCH_EVENTS));
  const params = { eventBytes: EVENT_BYTES, batchEvents: BATCH_EVENTS, op: 'event' };
  return {
    cases: [
      {
        name: 'verify-frame',
        params: { ...params, bytes: frame.length },
        opsPerCall: BATCH_EVENTS,
        run: verified(frame, 'Frame'),
      },
      {
        name: 'verify-event-batch',
        params: { ...params, bytes: block.length },
        opsPerCall: BATCH_EVENTS,
        run: verified(block, 'EventBatch'),
      },
    ],
    close: async () => {},
  };
}
