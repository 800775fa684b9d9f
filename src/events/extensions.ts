import { parseTimestampMs } from './timestamp.js';
import type { CloudEvent } from './types.js';

/**
 * Extension attributes Eddy knows by name. They are ordinary extensions on the wire; validation
 * adds the rules of their specifications: Correlation (`correlationid`, `causationid`: non-empty
 * Strings), Distributed Tracing (`traceparent`: W3C Trace Context), and Eddy's scheduled
 * delivery (`deliverat`: an RFC 3339 Timestamp, docs/client.md).
 */
export const Extension = {
  /** Groups every event of one logical flow or business transaction; a reply's is its request's `id`. */
  CORRELATION_ID: 'correlationid',
  /** The topic a request's reply goes to (request-reply, docs/client.md). */
  REPLY_TO: 'replyto',
  /** The `id` of the event that directly caused this one. */
  CAUSATION_ID: 'causationid',
  /** W3C `traceparent` of the trace that started the flow. */
  TRACEPARENT: 'traceparent',
  /** When the broker makes the event visible to readers (scheduled delivery); a Timestamp. */
  DELIVER_AT: 'deliverat',
} as const;

export type Extension = (typeof Extension)[keyof typeof Extension];

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(?:-.*)?$/;
const VERSION_00_LENGTH = 55;

/**
 * Whether `value` is a W3C Trace Context `traceparent`: `version-traceid-parentid-flags` in
 * lower-case hex, version not `ff`, ids not all zero. Version `00` has exactly four fields; later
 * versions may append `-…` fields, which a version-00 reader must tolerate.
 */
export function isTraceparent(value: string): boolean {
  if (!TRACEPARENT.test(value) || value.startsWith('ff')) return false;
  if (value.startsWith('00') && value.length !== VERSION_00_LENGTH) return false;
  return (
    !value.startsWith('00000000000000000000000000000000', 3) && !value.startsWith('0000000000000000', 36)
  );
}

/**
 * When an event's `deliverat` asks the broker to make it visible, in epoch milliseconds: 0 without
 * one, NaN when it is no RFC 3339 date-time (validation refuses such an event).
 */
export function deliverAtOf(event: CloudEvent): number {
  const value = event.extensions?.[Extension.DELIVER_AT];
  if (value === undefined) return 0;
  return typeof value === 'string' ? parseTimestampMs(value) : Number.NaN;
}

/** The extensions carried from a cause to its effects (a type alias, so it fits `extensions`). */
export type CausationExtensions = {
  readonly correlationid: string;
  readonly causationid: string;
  readonly traceparent?: string;
};

/**
 * Extensions for an event caused by `cause`: `causationid` is the cause's `id`; `correlationid`
 * is the cause's, or its `id` when the cause starts the flow; `traceparent` is passed on, since
 * the Distributed Tracing extension carries the trace that started the flow, not each hop.
 *
 * @example createEvent({ type, source, data, extensions: { ...causedBy(order) } })
 */
export function causedBy(cause: CloudEvent): CausationExtensions {
  const correlation = cause.extensions?.[Extension.CORRELATION_ID];
  const traceparent = cause.extensions?.[Extension.TRACEPARENT];
  const extensions = {
    correlationid: typeof correlation === 'string' && correlation !== '' ? correlation : cause.id,
    causationid: cause.id,
  };
  return typeof traceparent === 'string' ? { ...extensions, traceparent } : extensions;
}
