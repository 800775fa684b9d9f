/**
 * Writing HTTP answers with uWebSockets.js, shared by the API's route files:
 * one reply per request, errors as `application/problem+json` (RFC 9457)
 * whose `code` is the protocol's error name, and nothing thrown ever reaching
 * uWS (which would abort the process).
 */
import { CloudEventValidationError, isEventsError } from '../events/index.js';
import { isFilterError, type FilterErrorName } from '../filters/index.js';
import { BrokerError, errorCodes, isBrokerError } from '../protocol/index.js';
import type { HttpRequest, HttpResponse } from './uws.js';

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  400: 'Bad Request',
  404: 'Not Found',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
  507: 'Insufficient Storage',
};

export interface Reply {
  readonly status: number;
  readonly contentType?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Uint8Array;
}

export const json = (status: number, value: unknown): Reply => ({
  status,
  contentType: 'application/json',
  body: JSON.stringify(value),
});

/** HTTP statuses of the filter host's errors (they join the protocol's table when WASM filters reach the wire). */
const filterErrorStatus: Partial<Record<FilterErrorName, number>> = {
  FILTER_NOT_FOUND: 404,
  FILTER_VERSION_EXISTS: 409,
  FILTER_TOO_MANY_VERSIONS: 409,
  FILTER_ALREADY_LOADED: 409,
  FILTER_SANDBOX_CLOSED: 503,
};

/**
 * An error as problem+json (RFC 9457), `code` being the protocol's error name,
 * with `retryAfterMs` when the error advises a wait; `fields` are extension
 * members the body carries as well.
 */
export function problem(error: unknown, fields: Readonly<Record<string, unknown>> = {}): Reply {
  if (isFilterError(error)) {
    const status = filterErrorStatus[error.errorName] ?? 400;
    return {
      status,
      contentType: 'application/problem+json',
      body: JSON.stringify({
        type: `urn:eddy:error:${error.errorName}`,
        title: error.errorName,
        status,
        detail: error.message,
        code: error.errorName,
        retriable: error.retriable,
        ...fields,
      }),
    };
  }
  let brokerError: BrokerError;
  let extra: Record<string, unknown> = { ...fields };
  if (isBrokerError(error)) {
    brokerError = error;
  } else if (isEventsError(error)) {
    const name =
      error.code === 'UNSUPPORTED_CONTENT_TYPE'
        ? 'UNSUPPORTED_CONTENT_TYPE'
        : error.code === 'TOO_MANY_EVENTS'
          ? 'BATCH_TOO_LARGE'
          : error.code === 'INVALID_EVENT'
            ? 'INVALID_EVENT'
            : 'INVALID_REQUEST';
    brokerError = new BrokerError(name, error.message);
    if (error instanceof CloudEventValidationError) extra = { ...extra, invalidEvents: error.invalidEvents };
  } else {
    brokerError = new BrokerError('INTERNAL', error instanceof Error ? error.message : String(error));
  }
  const status = errorCodes[brokerError.errorName].httpStatus;
  return {
    status,
    contentType: 'application/problem+json',
    body: JSON.stringify({
      type: `urn:eddy:error:${brokerError.errorName}`,
      title: brokerError.errorName,
      status,
      detail: brokerError.message,
      code: brokerError.errorName,
      retriable: brokerError.retriable,
      ...(brokerError.retryAfterMs === undefined ? {} : { retryAfterMs: brokerError.retryAfterMs }),
      ...extra,
    }),
  };
}

function send(res: HttpResponse, state: { aborted: boolean }, reply: Reply): void {
  if (state.aborted) return;
  state.aborted = true; // a response is answered once
  const headers = Object.entries(reply.headers ?? {});
  // Header values come from stored events: anything but a string would throw inside uWS.
  if (headers.some(([, value]) => typeof value !== 'string')) {
    reply = problem(new BrokerError('INTERNAL', 'a stored event cannot be written as HTTP headers'));
    headers.length = 0;
  }
  try {
    res.cork(() => {
      res.writeStatus(`${reply.status} ${STATUS_TEXT[reply.status] ?? ''}`);
      if (reply.contentType) res.writeHeader('content-type', reply.contentType);
      for (const [name, value] of headers) res.writeHeader(name, value);
      res.end(reply.body ?? '');
    });
  } catch {
    // Half-written: all that is left is to drop the connection, never to let the error reach uWS.
    res.close();
  }
}

/** Runs `handle` and sends what it returns, or the problem it throws; never lets an error escape into uWS. */
export function respond(res: HttpResponse, handle: () => Reply | Promise<Reply>): void {
  const state = { aborted: false };
  res.onAborted(() => {
    state.aborted = true;
  });
  let result: Reply | Promise<Reply>;
  try {
    result = handle();
  } catch (error) {
    send(res, state, problem(error));
    return;
  }
  if (result instanceof Promise) {
    result.then(
      (reply) => send(res, state, reply),
      (error: unknown) => send(res, state, problem(error)),
    );
  } else {
    send(res, state, result);
  }
}

/** Reads the whole body (copying uWS's transient chunks), refusing more than `limit` bytes. */
export function withBody(
  res: HttpResponse,
  limit: number,
  handle: (body: Uint8Array) => Reply | Promise<Reply>,
): void {
  const state = { aborted: false };
  res.onAborted(() => {
    state.aborted = true;
  });
  const chunks: Uint8Array[] = [];
  let size = 0;
  let refused = false;
  res.onData((chunk, isLast) => {
    if (refused) return;
    size += chunk.byteLength;
    if (size > limit) {
      refused = true;
      send(res, state, problem(new BrokerError('FRAME_TOO_LARGE', `the body exceeds ${limit} bytes`)));
      return;
    }
    chunks.push(new Uint8Array(chunk.slice(0)));
    if (!isLast) return;
    const body = concat(chunks, size);
    let result: Reply | Promise<Reply>;
    try {
      result = handle(body);
    } catch (error) {
      send(res, state, problem(error));
      return;
    }
    Promise.resolve(result).then(
      (reply) => send(res, state, reply),
      (error: unknown) => send(res, state, problem(error)),
    );
  });
}

function concat(chunks: readonly Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const body = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    body.set(chunk, at);
    at += chunk.length;
  }
  return body;
}

export function parseJsonObject(body: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(body));
  } catch (error) {
    throw new BrokerError('INVALID_REQUEST', `the body is not JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new BrokerError('INVALID_REQUEST', 'the body must be a JSON object');
  return value as Record<string, unknown>;
}

/** An integer query parameter, at least `min`; `fallback` when absent. */
export function integerQuery(req: HttpRequest, name: string, fallback: number, min: number): number {
  const raw = req.getQuery(name);
  if (raw === undefined || raw === '') return fallback;
  const value = /^-?\d+$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min)
    throw new BrokerError(
      'INVALID_REQUEST',
      `query parameter ${name} must be an integer >= ${min}, got "${raw}"`,
    );
  return value;
}

/** A request's headers (uWS hands them out only during its handler). */
export function headersOf(req: HttpRequest): Record<string, string> {
  const headers: Record<string, string> = {};
  req.forEach((name, value) => {
    headers[name] = value;
  });
  return headers;
}

/**
 * A path parameter, percent-decoded. A malformed escape (`%E0%A4%A`) is kept
 * as it came: the lookup it is used for fails with the route's own error,
 * rather than a URIError escaping the handler.
 */
export function pathParameter(req: HttpRequest, index: number): string {
  const raw = req.getParameter(index) ?? '';
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
