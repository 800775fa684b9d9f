/**
 * A dead letter: the event a queue subscription gave up on, as a new event
 * block for the dead-letter topic — the original event unchanged but for
 * extensions saying where it came from and why it died, so an operator can
 * inspect it and redrive it (send it back) later.
 *
 *   dlqtopic, dlqpartition, dlqoffset   where the original is stored
 *   dlqsubscription                      the subscription that gave up on it
 *   dlqattempts                          how many times it was delivered
 *   dlqreason                            max-deliveries, expired, filter-trap
 *   dlqerror                             the last nack's error, if it gave one; the
 *                                        filter's error for filter-trap
 */
import { encodeEventBatch, type EventFields, type ExtensionField } from '../protocol/index.js';
import { forEachStoredEvent } from './stored-events.js';

export const DEAD_LETTER_EXTENSIONS = [
  'dlqattempts',
  'dlqerror',
  'dlqoffset',
  'dlqpartition',
  'dlqreason',
  'dlqsubscription',
  'dlqtopic',
] as const;

/**
 * Why an event died: a queue gave up on it (`max-deliveries`, `expired`), or
 * the subscription's WASM filter failed on it under its `dead-letter` policy
 * (`filter-trap`, src/server/wasm-filters.ts).
 */
export type DeadLetterReason = 'max-deliveries' | 'expired' | 'filter-trap';

export interface DeadLetterOrigin {
  readonly subscription: string;
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly attempts: number;
  readonly reason: DeadLetterReason;
  readonly lastError: string | null;
}

/** The stored event at `offset` in `batches` (whole stored batches, as a read returns them), with its batch's key; null if not there. */
export function storedEvent(
  batches: Uint8Array,
  offset: number,
): { event: EventFields; key: Uint8Array | null } | null {
  let found: { event: EventFields; key: Uint8Array | null } | null = null;
  forEachStoredEvent(batches, (at, event, batch) => {
    if (at === offset) found = { event, key: batch.key === null ? null : batch.key.slice() };
  });
  return found;
}

/** The event block of the dead letter: the original event with the dead-letter extensions (replacing any it had). */
export function deadLetterBlock(event: EventFields, origin: DeadLetterOrigin): Uint8Array {
  const added: ExtensionField[] = [
    { name: 'dlqattempts', kind: 'integer', value: Math.min(origin.attempts, 0x7fff_ffff) },
    { name: 'dlqoffset', kind: 'string', value: String(origin.offset) },
    { name: 'dlqpartition', kind: 'integer', value: origin.partition },
    { name: 'dlqreason', kind: 'string', value: origin.reason },
    { name: 'dlqsubscription', kind: 'string', value: origin.subscription },
    { name: 'dlqtopic', kind: 'string', value: origin.topic },
  ];
  if (origin.lastError !== null) added.push({ name: 'dlqerror', kind: 'string', value: origin.lastError });
  const names = new Set<string>(DEAD_LETTER_EXTENSIONS);
  const extensions = [...(event.extensions ?? []).filter((e) => !names.has(e.name)), ...added].sort((a, b) =>
    a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
  );
  return encodeEventBatch([{ ...event, extensions }]);
}
