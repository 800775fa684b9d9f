/**
 * Calls to the broker's HTTP API for the SDK's operator features that are not
 * on the WebSocket protocol (dead letters, routing rules), with the
 * platform's `fetch`, in Node and in browsers alike.
 */
import { BrokerError, errorCodes, type ErrorName } from '../protocol/index.js';

/** A problem+json body, as the broker answers a failed request. */
export interface Problem {
  readonly code?: string;
  readonly detail?: string;
  readonly [field: string]: unknown;
}

export class HttpApi {
  readonly #base: string;
  readonly #authToken: string | null;

  /** `url` as given to `connect`: http(s), or ws(s) with or without `/v1/ws`. */
  constructor(url: string, authToken: string | null) {
    const parsed = new URL(url);
    if (parsed.protocol === 'ws:') parsed.protocol = 'http:';
    else if (parsed.protocol === 'wss:') parsed.protocol = 'https:';
    this.#base = parsed.origin;
    this.#authToken = authToken;
  }

  /**
   * The JSON answer (`{}` for a 204); a problem+json answer becomes the
   * BrokerError it names, its `cause` the problem body (for the fields a
   * route adds, such as where a rule set is wrong).
   */
  async call(path: string, init: RequestInit = {}): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(`${this.#base}${path}`, {
        ...init,
        ...(this.#authToken === null ? {} : { headers: { authorization: `Bearer ${this.#authToken}` } }),
      });
    } catch (error) {
      throw new BrokerError('NOT_CONNECTED', `cannot reach the broker at ${this.#base}: ${String(error)}`, {
        cause: error,
      });
    }
    if (response.status === 204) return {};
    const body = (await response.json().catch(() => null)) as Problem | null;
    if (!response.ok) {
      const name =
        body?.code !== undefined && body.code in errorCodes ? (body.code as ErrorName) : 'INTERNAL';
      throw new BrokerError(name, body?.detail ?? `HTTP ${response.status}`, { cause: body });
    }
    return body;
  }
}
