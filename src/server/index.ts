/** `eddy/broker`: embed a broker node in-process. */
export { startBroker, type RunningBroker } from './broker-server.js';
export type { BrokerConfig } from './config.js';
export { nativeUwsLoaded } from './uws.js';
