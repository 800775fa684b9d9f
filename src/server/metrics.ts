/** Prometheus metrics of one broker node (its own registry, so several nodes can share a process). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SubscriptionDescription } from '../protocol/index.js';

export class BrokerMetrics {
  readonly registry = new Registry();
  readonly publishedEvents = new Counter({
    name: 'eddy_published_events_total',
    help: 'Events appended to the log.',
    labelNames: ['topic'] as const,
    registers: [this.registry],
  });
  readonly publishedBatches = new Counter({
    name: 'eddy_published_batches_total',
    help: 'Batches appended to the log.',
    labelNames: ['topic'] as const,
    registers: [this.registry],
  });
  readonly publishErrors = new Counter({
    name: 'eddy_publish_errors_total',
    help: 'Publishes refused, by error name.',
    labelNames: ['error'] as const,
    registers: [this.registry],
  });
  readonly quotaRejections = new Counter({
    name: 'eddy_publish_quota_rejections_total',
    help: 'Publish batches refused with QUOTA_EXCEEDED (over publishQuotaEventsPerSecond or publishQuotaBytesPerSecond), by transport.',
    labelNames: ['transport'] as const,
    registers: [this.registry],
  });
  readonly deliveredEvents = new Counter({
    name: 'eddy_delivered_events_total',
    help: 'Events sent to consumers (Deliver and Fetch).',
    labelNames: ['topic'] as const,
    registers: [this.registry],
  });
  readonly publishSeconds = new Histogram({
    name: 'eddy_publish_duration_seconds',
    help: 'From a publish arriving to its ack being sent.',
    labelNames: ['ack'] as const,
    buckets: [0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    registers: [this.registry],
  });
  readonly consumeLagSeconds = new Histogram({
    name: 'eddy_consume_lag_seconds',
    help: 'From a batch being appended to the log to its being sent to a subscriber.',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30, 300],
    registers: [this.registry],
  });
  readonly expiredEvents = new Counter({
    name: 'eddy_expired_events_total',
    help: "Events not delivered to a subscription because they were older than their topic's message.ttl.ms.",
    labelNames: ['topic'] as const,
    registers: [this.registry],
  });
  readonly connections = new Counter({
    name: 'eddy_connections_total',
    help: 'WebSocket connections accepted.',
    registers: [this.registry],
  });
  readonly connectionsRefused = new Counter({
    name: 'eddy_connections_refused_total',
    help: 'WebSocket upgrades refused because the broker already served maxConnections.',
    registers: [this.registry],
  });
  readonly slowConsumers = new Counter({
    name: 'eddy_slow_consumers_total',
    help: 'Connections cut off for falling too far behind.',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'eddy_' });
  }

  /** Routing counters (src/broker/routing/), read at each scrape. */
  watchRouting(stats: () => { routedPublishes: number; copies: number; events: number }): void {
    const counters = [
      ['eddy_routed_publishes_total', 'Publishes that routing rules copied events of.', 'routedPublishes'],
      ['eddy_routed_copies_total', 'Batches appended to destination topics by routing rules.', 'copies'],
      ['eddy_routed_events_total', 'Events appended to destination topics by routing rules.', 'events'],
    ] as const;
    for (const [name, help, field] of counters)
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.reset();
          this.inc(stats()[field]);
        },
      });
  }

  /**
   * Lag and members of the durable subscriptions, read from `describe` at each
   * scrape (so subscriptions and partitions that went leave no stale series).
   */
  watchSubscriptions(describe: () => SubscriptionDescription[]): void {
    new Gauge({
      name: 'eddy_subscription_lag_events',
      help: "Events between a durable subscription's committed offset (a queue's ack floor) and the end of the partition.",
      labelNames: ['subscription', 'topic', 'partition'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of describe())
          for (const p of s.partitions)
            this.set(
              { subscription: s.name, topic: p.topic, partition: String(p.partition) },
              Math.max(0, p.endOffset - p.committed),
            );
      },
    });
    new Gauge({
      name: 'eddy_subscription_members',
      help: 'Members joined to a durable subscription.',
      labelNames: ['subscription'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of describe()) this.set({ subscription: s.name }, s.members.length);
      },
    });
  }

  /**
   * Partitions that refuse writes after a storage failure, read at each
   * scrape: `eddy_failed_partitions{topic,partition}` is 1 for each, and
   * `eddy_corrupt_partitions` counts those failed because stored data did
   * not pass its checks (CRC, lengths, offsets; their segment is quarantined).
   */
  watchPartitions(failed: () => { topic: string; partition: number; error: string }[]): void {
    new Gauge({
      name: 'eddy_failed_partitions',
      help: 'Partitions refusing writes after a storage failure (1 each; /readyz has the reason).',
      labelNames: ['topic', 'partition'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { topic, partition } of failed()) this.set({ topic, partition: String(partition) }, 1);
      },
    });
    new Gauge({
      name: 'eddy_corrupt_partitions',
      help: 'Partitions failed because stored data did not pass its checks (CRC, lengths, offsets).',
      registers: [this.registry],
      collect() {
        this.set(failed().filter(({ error }) => /corrupt|quarantin/i.test(error)).length);
      },
    });
  }

  /** Drops a deleted topic's series, so creating and deleting topics does not grow the registry. */
  forgetTopic(topic: string): void {
    for (const counter of [
      this.publishedEvents,
      this.publishedBatches,
      this.deliveredEvents,
      this.expiredEvents,
    ])
      counter.remove({ topic });
  }
}
