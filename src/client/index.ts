/**
 * `eddy` package entry: the client SDK for the binary WebSocket protocol.
 * The protocol, server and SDK arrive with issue #3; until then `connect`
 * says so instead of pretending to work.
 */
export interface ConnectOptions {
  /** Broker WebSocket URL, e.g. `ws://127.0.0.1:7070/v1/ws`. */
  readonly url: string;
  readonly clientName?: string;
}

export function connect(options: ConnectOptions): never {
  throw new Error(`eddy client: not implemented yet (issue #3); cannot connect to ${options.url}`);
}
