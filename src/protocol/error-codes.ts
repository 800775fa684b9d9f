/**
 * Every error the broker can report, one row each. Only the number travels in
 * an Error frame; the HTTP API maps it to a status and a problem+json `type`.
 * Codes are never reused or renumbered (docs/reference/errors.md lists them,
 * and a test keeps that page and this table in step).
 */
export interface ErrorCodeInfo {
  readonly code: number;
  /** Whether the same request may succeed if sent again later, unchanged. */
  readonly retriable: boolean;
  readonly httpStatus: number;
  readonly description: string;
}

export const errorCodes = {
  MALFORMED_FRAME: {
    code: 1,
    retriable: false,
    httpStatus: 400,
    description:
      'The frame is not a valid FlatBuffer of the Eddy schema (bounds, offsets, union tags, nesting).',
  },
  UNSUPPORTED_VERSION: {
    code: 2,
    retriable: false,
    httpStatus: 400,
    description: 'No protocol version is supported by both sides.',
  },
  UNSUPPORTED_MESSAGE: {
    code: 3,
    retriable: false,
    httpStatus: 400,
    description: 'The message type is unknown to this broker or not valid in this direction.',
  },
  HANDSHAKE_REQUIRED: {
    code: 4,
    retriable: false,
    httpStatus: 400,
    description: 'The first frame on a connection must be Hello, and only the first.',
  },
  FRAME_TOO_LARGE: {
    code: 5,
    retriable: false,
    httpStatus: 413,
    description: 'The frame or request body is larger than the broker accepts.',
  },
  BATCH_TOO_LARGE: {
    code: 6,
    retriable: false,
    httpStatus: 413,
    description: 'The batch holds more events, or more bytes once decompressed, than the broker accepts.',
  },
  INVALID_EVENT: {
    code: 7,
    retriable: false,
    httpStatus: 400,
    description: 'An event breaks a CloudEvents rule; the message names the event, attribute and rule.',
  },
  INVALID_REQUEST: {
    code: 8,
    retriable: false,
    httpStatus: 400,
    description: 'A field of the request has a value the broker cannot accept.',
  },
  UNSUPPORTED_CONTENT_TYPE: {
    code: 9,
    retriable: false,
    httpStatus: 415,
    description: 'The HTTP body is not in one of the accepted content types.',
  },
  TOPIC_NOT_FOUND: {
    code: 10,
    retriable: false,
    httpStatus: 404,
    description: 'No topic has this name.',
  },
  TOPIC_ALREADY_EXISTS: {
    code: 11,
    retriable: false,
    httpStatus: 409,
    description: 'A topic with this name exists already.',
  },
  INVALID_TOPIC_NAME: {
    code: 12,
    retriable: false,
    httpStatus: 400,
    description: 'Topic names are dot-separated words of letters, digits, "-" and "_".',
  },
  PARTITION_NOT_FOUND: {
    code: 13,
    retriable: false,
    httpStatus: 404,
    description: 'The topic has no partition with this number.',
  },
  OFFSET_OUT_OF_RANGE: {
    code: 14,
    retriable: false,
    httpStatus: 416,
    description: 'The offset lies outside the partition (before its start or past its end).',
  },
  RECORD_TOO_LARGE: {
    code: 15,
    retriable: false,
    httpStatus: 413,
    description: 'The batch does not fit in one log segment.',
  },
  SUBSCRIPTION_NOT_FOUND: {
    code: 16,
    retriable: false,
    httpStatus: 404,
    description:
      'No subscription with this id exists on the connection, or no durable subscription has this name.',
  },
  SUBSCRIPTION_EXISTS: {
    code: 17,
    retriable: false,
    httpStatus: 409,
    description:
      'The connection already has a subscription with this id, or a durable subscription has this name.',
  },
  TOO_MANY_IN_FLIGHT: {
    code: 18,
    retriable: true,
    httpStatus: 429,
    description: 'The connection has as many unacknowledged publishes as the broker allows; wait for acks.',
  },
  STORAGE_FULL: {
    code: 19,
    retriable: true,
    httpStatus: 507,
    description: 'The disk is full; nothing of the batch was stored.',
  },
  STORAGE_FAILED: {
    code: 20,
    retriable: true,
    httpStatus: 503,
    description: 'The partition refuses writes after a storage failure until it has recovered from disk.',
  },
  CORRUPT_DATA: {
    code: 21,
    retriable: false,
    httpStatus: 500,
    description: 'Stored data failed its checksum; it is never delivered.',
  },
  SLOW_CONSUMER: {
    code: 22,
    retriable: true,
    httpStatus: 503,
    description: 'The consumer fell too far behind and was disconnected rather than buffered without bound.',
  },
  SHUTTING_DOWN: {
    code: 23,
    retriable: true,
    httpStatus: 503,
    description: 'The broker is shutting down and accepts no new work.',
  },
  TIMEOUT: {
    code: 24,
    retriable: true,
    httpStatus: 504,
    description: 'The operation did not complete in time.',
  },
  NOT_CONNECTED: {
    code: 25,
    retriable: true,
    httpStatus: 503,
    description: 'The client has no open connection to the broker (client side only).',
  },
  INTERNAL: {
    code: 26,
    retriable: false,
    httpStatus: 500,
    description: 'A bug: the broker hit a state it does not expect. Please report it.',
  },
  OUT_OF_ORDER_SEQUENCE: {
    code: 27,
    retriable: false,
    httpStatus: 409,
    description:
      "An idempotent producer's batch neither continues its sequence on the partition nor resends one of its last five batches.",
  },
  FILTER_FAILED: {
    code: 28,
    retriable: false,
    httpStatus: 422,
    description:
      'A WASM filter or transform could not be loaded or stopped working (it ran past its time budget and was quarantined, or its failure policy disabled it), or a transform on publish failed on an event under its `reject` policy (nothing was stored); the message names the filter error.',
  },
  SUBSCRIPTION_IN_USE: {
    code: 29,
    retriable: true,
    httpStatus: 409,
    description:
      'An exclusive durable subscription already has its consumer, or a member name is in use on another connection.',
  },
  NOT_ASSIGNED: {
    code: 30,
    retriable: false,
    httpStatus: 409,
    description:
      'The member commits or acks a partition that is not assigned to it (a rebalance moved it to another member).',
  },
  SESSION_EXPIRED: {
    code: 31,
    retriable: true,
    httpStatus: 409,
    description:
      "The member sent no heartbeat within the subscription's session timeout and was removed from it; join again.",
  },
  ROUTING_RULE_SET_NOT_FOUND: {
    code: 32,
    retriable: false,
    httpStatus: 404,
    description: 'No routing rule set has this id.',
  },
  QUOTA_EXCEEDED: {
    code: 33,
    retriable: true,
    httpStatus: 429,
    description:
      'The connection (HTTP: the client address) publishes faster than its publish quota; nothing of the batch was stored. `retryAfterMs` says in how many ms it would be accepted (HTTP: also `Retry-After`).',
  },
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorName = keyof typeof errorCodes;

const byCode = new Map<number, ErrorName>(
  Object.entries(errorCodes).map(([name, info]) => [info.code, name as ErrorName]),
);

/** The name of a wire code; unknown codes (from a newer broker) read as INTERNAL. */
export function errorNameOf(code: number): ErrorName {
  return byCode.get(code) ?? 'INTERNAL';
}

/** An error reported by the broker or raised by the protocol layer, identified by its code. */
export class BrokerError extends Error {
  readonly code: number;
  readonly errorName: ErrorName;
  readonly retriable: boolean;
  /** The request this answers, when it answers one. */
  readonly requestId: number;
  /**
   * In how many ms the same request would be accepted (QUOTA_EXCEEDED), from
   * when the broker answered; absent when the broker gave no advice (not even
   * an own property, as on errors from before it).
   */
  declare readonly retryAfterMs?: number;

  constructor(
    name: ErrorName,
    message: string,
    options: { requestId?: number; cause?: unknown; retryAfterMs?: number } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    const info: ErrorCodeInfo = errorCodes[name];
    this.name = 'BrokerError';
    this.code = info.code;
    this.errorName = name;
    this.retriable = info.retriable;
    this.requestId = options.requestId ?? 0;
    // 0 is the wire's "no advice", so it never reads as "now".
    if (options.retryAfterMs !== undefined && options.retryAfterMs > 0)
      this.retryAfterMs = options.retryAfterMs;
  }

  /** The error an Error frame carries (`retryAfterMs` absent or 0: no advice). */
  static fromWire(code: number, message: string, requestId = 0, retryAfterMs = 0): BrokerError {
    return new BrokerError(errorNameOf(code), message, { requestId, retryAfterMs });
  }
}

const brand = Symbol.for('eddy.BrokerError');
Object.defineProperty(BrokerError.prototype, brand, { value: true });

/** True for a BrokerError from any copy of this module (optionally of one name). */
export function isBrokerError(value: unknown, name?: ErrorName): value is BrokerError {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as Record<symbol, unknown>)[brand] === true &&
    (name === undefined || (value as BrokerError).errorName === name)
  );
}
