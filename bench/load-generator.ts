/**
 * The broker benchmark's load generator for Eddy: a child process (forked by
 * `broker.bench.ts` from its compiled `dist/bench/load-generator.js`) that
 * publishes through the real client SDK, or consumes through it, and reports
 * over IPC. It runs in its own process so that its event loop, its event
 * encoding and its garbage are not the broker's. The schedule, payloads,
 * histograms and conversation are `generator-core.ts`, shared with the peers'
 * generator (`peers/peer-generator.ts`); this file is only how Eddy is driven:
 *
 * - publisher: `publish(topic, {type, source, data}, {ack, key})`, one event per call, batched by
 *   the SDK (`lingerMs`, `maxBatchBytes`; one batch per key), the key left out when unkeyed.
 * - consumer: subscribes from `latest` (with the spec's filter) before publishing starts.
 * - joined consumer (`join` set): a member of a durable subscription that the
 *   parent created (`client.join`, the SDK's default `ack: 'auto'`: a queue acks
 *   each event after the handler, a stream commits after each batch); it counts
 *   the deliveries of every event, so that the parent can tell which acked
 *   events never arrived and which arrived more than once, across all members.
 */
import {
  connect,
  isBrokerError,
  type DeliveredEvent,
  type EddyClient,
  type PublishOptions,
} from '../src/client/index.js';
import {
  keyNames,
  runGenerator,
  type LoadConsumerSpec,
  type LoadPublisherSpec,
  type LoadTarget,
} from './generator-core.js';

export {
  EVENT_BYTES_MIN,
  latencyHistogram,
  type AckedEvents,
  type ConsumerResult,
  type FromGenerator,
  type PublisherResult,
  type ToGenerator,
} from './generator-core.js';

export type AckLevel = NonNullable<PublishOptions['ack']>;

export interface PublisherSpec extends LoadPublisherSpec {
  readonly url: string;
  readonly topic: string;
  readonly ack: AckLevel;
  /** SDK batching: `connect` options. */
  readonly lingerMs: number;
  readonly maxBatchBytes: number;
  readonly compressionThresholdBytes: number;
}

export interface ConsumerSpec extends LoadConsumerSpec {
  readonly url: string;
  readonly topic: string;
  /** Stored batches the broker may send ahead of the handler. */
  readonly credits: number;
  /** The subscription's filter, or null. */
  readonly filter: unknown;
  /** Join this durable subscription as `member` instead of subscribing to `topic` (plain, from `latest`). */
  readonly join: { readonly subscription: string; readonly member: string } | null;
}

export type GeneratorSpec = PublisherSpec | ConsumerSpec;

const EVENT_TYPE = 'dev.eddy.bench';
const EVENT_SOURCE = '/eddy/bench';

async function openEddy(spec: GeneratorSpec, fail: (error: unknown) => void): Promise<LoadTarget> {
  const client: EddyClient = await connect(spec.url, {
    clientName: `eddy-bench-${spec.role}`,
    ...(spec.role === 'publisher'
      ? {
          lingerMs: spec.lingerMs,
          maxBatchBytes: spec.maxBatchBytes,
          compressionThresholdBytes: spec.compressionThresholdBytes,
        }
      : {}),
    reconnectMaxDelayMs: 0,
  });
  client.onError = (error) => fail(error);
  const options: PublishOptions = spec.role === 'publisher' ? { ack: spec.ack } : {};
  // One options object per key, made once: a keyed publish allocates nothing more than an unkeyed one.
  const keyed = new Map(
    keyNames(spec.role === 'publisher' ? spec.keys : 0).map((key) => [key, { ...options, key }] as const),
  );
  return {
    publish: (data, key) =>
      client.publish(
        spec.topic,
        { type: EVENT_TYPE, source: EVENT_SOURCE, data },
        key === null ? options : (keyed.get(key) ?? { ...options, key }),
      ),
    isDisconnected: (error) => isBrokerError(error, 'NOT_CONNECTED'),
    countsDeliveries: spec.role === 'consumer' && spec.join !== null,
    async subscribe(onData) {
      if (spec.role !== 'consumer') throw new Error('a publisher does not subscribe');
      const onEvent = ({ event }: DeliveredEvent): void => {
        if (event.data !== undefined) onData(event.data);
      };
      if (spec.join !== null) {
        // `ack` left at the SDK's default, `auto`: what a user gets without asking.
        await client.join(
          spec.join.subscription,
          { member: spec.join.member, credits: spec.credits },
          onEvent,
        );
        return;
      }
      const filter = spec.filter === null ? {} : { filter: spec.filter };
      await client.subscribe(spec.topic, { from: 'latest', credits: spec.credits, ...filter }, onEvent);
    },
    close: () => client.close(),
  };
}

await runGenerator<GeneratorSpec>(
  'load-generator.js is forked by the broker benchmark (eddy bench publish|e2e|group|compare)',
  openEddy,
);
