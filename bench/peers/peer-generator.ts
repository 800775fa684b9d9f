/**
 * The load generator for the peers of `eddy bench compare`: the same child process as Eddy's
 * (`../load-generator.ts`), the same schedule, payloads and histograms (`../generator-core.ts`),
 * publishing and consuming through the peer's own Node client instead of Eddy's SDK.
 */
import {
  runGenerator,
  type LoadConsumerSpec,
  type LoadPublisherSpec,
  type LoadTarget,
} from '../generator-core.js';
import { openNats, type NatsConnectionSpec } from './nats.js';
import { openRedis, type RedisConnectionSpec } from './redis.js';

export type PeerConnectionSpec = NatsConnectionSpec | RedisConnectionSpec;

export type PeerGeneratorSpec = (LoadPublisherSpec | LoadConsumerSpec) & {
  readonly peer: PeerConnectionSpec;
};

function openPeer(spec: PeerGeneratorSpec, fail: (error: unknown) => void): Promise<LoadTarget> {
  return spec.peer.kind === 'nats'
    ? openNats(spec.peer, spec.role, fail)
    : openRedis(spec.peer, spec.role, fail);
}

await runGenerator<PeerGeneratorSpec>('peer-generator.js is forked by eddy bench compare', openPeer);
