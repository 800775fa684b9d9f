/**
 * Errors of the CloudEvents layer. Callers switch on `code`, never on `message`; the protocol
 * layer maps each code to its error table (the HTTP status each one suggests is noted below).
 */
import type { ValidationIssue } from './types.js';

/** Every code an `EventsError` can have; a value never changes once released. */
export const EventsErrorCode = {
  /** One or more events break the CloudEvents rules; `issues` says which and why (HTTP 400). */
  INVALID_EVENT: 'INVALID_EVENT',
  /** The Content-Type is not a CloudEvents format this binding reads, nor binary mode (HTTP 415). */
  UNSUPPORTED_CONTENT_TYPE: 'UNSUPPORTED_CONTENT_TYPE',
  /** The body is not UTF-8 JSON of the shape its content mode needs (HTTP 400). */
  MALFORMED_BODY: 'MALFORMED_BODY',
  /** A batch has more events than `batchEventCountMax` (HTTP 413). */
  TOO_MANY_EVENTS: 'TOO_MANY_EVENTS',
} as const;

export type EventsErrorCode = (typeof EventsErrorCode)[keyof typeof EventsErrorCode];

// A registry-wide symbol, so two copies of this module (say, SDK and server bundles) agree.
const brand = Symbol.for('eddy.EventsError');

/** Base of every error this layer throws on purpose. */
export abstract class EventsError extends Error {
  abstract readonly code: EventsErrorCode;

  get [brand](): true {
    return true;
  }
}

/** Whether `value` is an `EventsError` (of `code`, if given), across module copies. */
export function isEventsError(value: unknown, code?: EventsErrorCode): value is EventsError {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[brand] === true &&
    (code === undefined || (value as EventsError).code === code)
  );
}

/** An invalid event and its position in the batch it came in (0 for a single event). */
export interface InvalidEvent {
  readonly index: number;
  readonly issues: readonly ValidationIssue[];
}

const ISSUES_IN_MESSAGE = 3;

/** One event, or some events of a batch, broke the CloudEvents rules. */
export class CloudEventValidationError extends EventsError {
  override readonly name = 'CloudEventValidationError';
  readonly code = EventsErrorCode.INVALID_EVENT;
  /** What the (first) invalid event broke. */
  readonly issues: readonly ValidationIssue[];
  /** That event's position in its batch; `undefined` when it was not in a batch. */
  readonly index: number | undefined;
  /** Every invalid event, in order; a batch is rejected as a whole, so all are listed. */
  readonly invalidEvents: readonly InvalidEvent[];

  /** `invalidEvents` must not be empty; `inBatch` says whether their indexes mean anything. */
  constructor(invalidEvents: readonly InvalidEvent[], inBatch = false) {
    const first = invalidEvents[0];
    if (first === undefined)
      throw new RangeError('CloudEventValidationError needs at least one invalid event');
    const shown = first.issues
      .slice(0, ISSUES_IN_MESSAGE)
      .map((issue) => `${issue.attribute} ${issue.message} (${issue.rule})`);
    if (first.issues.length > ISSUES_IN_MESSAGE)
      shown.push(`${first.issues.length - ISSUES_IN_MESSAGE} more`);
    const others = invalidEvents.length - 1;
    super(
      `invalid CloudEvent${inBatch ? ` at batch index ${first.index}` : ''}: ${shown.join('; ')}` +
        (others > 0 ? ` (and ${others} more invalid event${others === 1 ? '' : 's'} in the batch)` : ''),
    );
    this.issues = first.issues;
    this.index = inBatch ? first.index : undefined;
    this.invalidEvents = invalidEvents;
  }
}

/** The Content-Type names no format this binding reads, and the message is not binary mode. */
export class UnsupportedContentTypeError extends EventsError {
  override readonly name = 'UnsupportedContentTypeError';
  readonly code = EventsErrorCode.UNSUPPORTED_CONTENT_TYPE;
  /** The Content-Type as received; `undefined` when there was none. */
  readonly contentType: string | undefined;

  constructor(contentType: string | undefined, message: string) {
    super(message);
    this.contentType = contentType;
  }
}

/** The body is not UTF-8, not JSON, or not the JSON shape its content mode needs. */
export class MalformedBodyError extends EventsError {
  override readonly name = 'MalformedBodyError';
  readonly code = EventsErrorCode.MALFORMED_BODY;
}

/** A batch has more events than allowed; nothing of it was accepted. */
export class TooManyEventsError extends EventsError {
  override readonly name = 'TooManyEventsError';
  readonly code = EventsErrorCode.TOO_MANY_EVENTS;
  readonly count: number;
  readonly max: number;

  constructor(count: number, max: number) {
    super(`a batch may hold at most ${max} events; this one has ${count}`);
    this.count = count;
    this.max = max;
  }
}
