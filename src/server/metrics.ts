/** Prometheus metrics of one broker node (its own registry, so several nodes can share a process). */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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
  readonly connections = new Counter({
    name: 'eddy_connections_total',
    help: 'WebSocket connections accepted.',
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

  /** Drops a deleted topic's series, so creating and deleting topics does not grow the registry. */
  forgetTopic(topic: string): void {
    for (const counter of [this.publishedEvents, this.publishedBatches, this.deliveredEvents])
      counter.remove({ topic });
  }
}
