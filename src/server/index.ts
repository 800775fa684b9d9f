/**
 * `eddy/broker` entry: embed a broker in-process. The server arrives with
 * issue #3; until then `startBroker` says so instead of pretending to work.
 */
export interface BrokerConfig {
  readonly port?: number;
  readonly dataDir?: string;
}

export interface RunningBroker {
  readonly url: string;
  close(): Promise<void>;
}

export function startBroker(config: BrokerConfig = {}): Promise<RunningBroker> {
  return Promise.reject(
    new Error(`eddy broker: not implemented yet (issue #3); cannot start on port ${config.port ?? 7070}`),
  );
}
