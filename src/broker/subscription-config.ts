/**
 * A durable subscription's definition: its name, what it reads (a topic or a
 * pattern), its type, its filter, and its settings as carried on the wire
 * (string entries with dotted names, like topic settings) and stored in its
 * `subscription.json`.
 */
import {
  BrokerError,
  invalidTopicPattern,
  isTopicPattern,
  subscriptionTypes,
  type StartPosition,
  type SubscriptionType,
} from '../protocol/index.js';
import type { RetryPolicy } from './queue-state.js';
import { invalidTopicName } from './topic-name.js';

export const assignmentStrategies = ['range', 'round-robin', 'sticky'] as const;
/** How a `stream` subscription shares partitions among its members (group-assignment.ts). */
export type AssignmentStrategy = (typeof assignmentStrategies)[number];

export interface SubscriptionConfig {
  readonly assignment: AssignmentStrategy;
  /** A member that sends no heartbeat for this long is removed and its partitions reassigned. */
  readonly sessionTimeoutMs: number;
  /** Queue subscriptions: per-event acknowledgements, redelivery and dead letters; null for the other types. */
  readonly queue: QueueConfig | null;
}

export interface QueueConfig {
  /** An event not acked this long after its delivery is delivered again (the visibility timeout). */
  readonly ackTimeoutMs: number;
  /** Deliveries before an event goes to the dead-letter topic; 0: no limit. */
  readonly maxDeliveries: number;
  /** Where dead events go; null: `<their topic>.dlq`. */
  readonly deadLetterTopic: string | null;
  /** The delay before redelivering a nacked event that names none: backoff * multiplier^(attempt-1), capped, less jitter. */
  readonly retry: RetryPolicy;
  /** Delivered-but-unacked events per partition before new ones wait: bounds the broker's memory. */
  readonly maxUnacked: number;
  /** Events of one key (a batch's key) go to one member, in order. */
  readonly keyShared: boolean;
  /** Events past their topic's message.ttl.ms go to the dead-letter topic (reason `expired`) instead of being dropped. */
  readonly deadLetterExpired: boolean;
}

export interface SubscriptionDefinition {
  readonly name: string;
  /** A topic, or a pattern (`orders.*`, `orders.>`) that also takes in topics created later. */
  readonly topic: string;
  readonly type: SubscriptionType;
  /** Subscriptions API filters as JSON text, `{"wasm": …}`, or '' for every event. */
  readonly filter: string;
  readonly config: SubscriptionConfig;
}

export const defaultSubscriptionConfig: SubscriptionConfig = {
  assignment: 'range',
  sessionTimeoutMs: 10_000,
  queue: null,
};

export const defaultQueueConfig: QueueConfig = {
  ackTimeoutMs: 30_000,
  maxDeliveries: 10,
  deadLetterTopic: null,
  retry: { initialBackoffMs: 1000, maxBackoffMs: 60_000, multiplier: 2, jitter: 0.2 },
  maxUnacked: 10_000,
  keyShared: false,
  deadLetterExpired: false,
};

const SESSION_TIMEOUT_MS_MIN = 100;
const SESSION_TIMEOUT_MS_MAX = 30 * 60 * 1000;
const HOUR_MS = 60 * 60 * 1000;

const groupConfigNames = ['assignment', 'session.timeout.ms'] as const;
const queueConfigNames = [
  'ack.timeout.ms',
  'max.deliveries',
  'dead.letter.topic',
  'retry.backoff.ms',
  'retry.backoff.max.ms',
  'retry.backoff.multiplier',
  'retry.jitter',
  'max.unacked',
  'key.shared',
  'dead.letter.expired',
] as const;
export const subscriptionConfigNames = [...groupConfigNames, ...queueConfigNames] as const;
type ConfigName = (typeof subscriptionConfigNames)[number];

function invalid(message: string): BrokerError {
  return new BrokerError('INVALID_REQUEST', message);
}

/** Why `name` cannot name a durable subscription, or null if it can (the rules of topic names). */
export function invalidSubscriptionName(name: string): string | null {
  const reason = invalidTopicName(name);
  return reason === null ? null : reason.replaceAll('topic name', 'subscription name');
}

/** Whether a filter's JSON is `{"wasm": …}` (however it is spelled). */
function isWasmFilter(filter: string): boolean {
  try {
    const parsed: unknown = JSON.parse(filter);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) && 'wasm' in parsed;
  } catch {
    return false; // not JSON: the filter check reports it
  }
}

/**
 * A definition as stored by an earlier version: settings it did not have yet
 * take their defaults (a stream's `queue` is null, a queue's missing ones default).
 */
export function storedSubscriptionDefinition(stored: SubscriptionDefinition): SubscriptionDefinition {
  const queue = stored.type === 'queue' ? { ...defaultQueueConfig, ...stored.config.queue } : null;
  return { ...stored, config: { ...defaultSubscriptionConfig, ...stored.config, queue } };
}

/** Checks a definition from a client (wire or HTTP); throws INVALID_REQUEST naming what is wrong. */
export function parseSubscriptionDefinition(request: {
  readonly name: string;
  readonly topic: string;
  readonly type: string;
  readonly filter: string;
  readonly config: Readonly<Record<string, string>>;
}): SubscriptionDefinition {
  const nameProblem = invalidSubscriptionName(request.name);
  if (nameProblem !== null) throw invalid(`invalid subscription name "${request.name}": ${nameProblem}`);
  const topicProblem = isTopicPattern(request.topic)
    ? invalidTopicPattern(request.topic)
    : invalidTopicName(request.topic);
  if (topicProblem !== null) throw invalid(`invalid topic "${request.topic}": ${topicProblem}`);
  if (!(subscriptionTypes as readonly string[]).includes(request.type))
    throw invalid(`type must be one of ${subscriptionTypes.join(', ')}, got "${request.type}"`);
  // The queue dispatcher filters in place; the WASM sandbox answers later, which it does not wait for.
  if (request.type === 'queue' && isWasmFilter(request.filter))
    throw invalid('a queue subscription takes a CloudEvents SQL or dialect filter, not a WASM one');
  const config = parseSubscriptionConfig(request.config, request.type as SubscriptionType);
  // A dead letter with nowhere to go would be retried for ever: the default name must be a topic name.
  const deadLetterProblem =
    config.queue !== null && config.queue.deadLetterTopic === null && !isTopicPattern(request.topic)
      ? invalidTopicName(`${request.topic}.dlq`)
      : null;
  if (deadLetterProblem !== null)
    throw invalid(
      `the default dead-letter topic "${request.topic}.dlq" is not valid (${deadLetterProblem}); set dead.letter.topic`,
    );
  return {
    name: request.name,
    topic: request.topic,
    type: request.type as SubscriptionType,
    filter: request.filter,
    config,
  };
}

function integer(name: string, value: string, min: number, max: number): number {
  const number = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < min || number > max)
    throw invalid(`${name} must be an integer from ${min} to ${max}, got "${value}"`);
  return number;
}

function flag(name: string, value: string): boolean {
  if (value !== 'true' && value !== 'false') throw invalid(`${name} must be true or false, got "${value}"`);
  return value === 'true';
}

function decimal(name: string, value: string, min: number, max: number): number {
  const number = /^\d+(\.\d+)?$/.test(value) ? Number(value) : Number.NaN;
  if (!(number >= min && number <= max))
    throw invalid(`${name} must be a number from ${min} to ${max}, got "${value}"`);
  return number;
}

export function parseSubscriptionConfig(
  entries: Readonly<Record<string, string>>,
  type: SubscriptionType,
): SubscriptionConfig {
  let config: SubscriptionConfig = {
    ...defaultSubscriptionConfig,
    queue: type === 'queue' ? defaultQueueConfig : null,
  };
  for (const [name, value] of Object.entries(entries)) {
    if ((queueConfigNames as readonly string[]).includes(name)) {
      if (config.queue === null) throw invalid(`${name} applies to queue subscriptions, not ${type}`);
      config = {
        ...config,
        queue: parseQueueSetting(config.queue, name as (typeof queueConfigNames)[number], value),
      };
      continue;
    }
    switch (name as ConfigName) {
      case 'assignment':
        if (!(assignmentStrategies as readonly string[]).includes(value))
          throw invalid(`assignment must be one of ${assignmentStrategies.join(', ')}, got "${value}"`);
        config = { ...config, assignment: value as AssignmentStrategy };
        break;
      case 'session.timeout.ms':
        config = {
          ...config,
          sessionTimeoutMs: integer(name, value, SESSION_TIMEOUT_MS_MIN, SESSION_TIMEOUT_MS_MAX),
        };
        break;
      default:
        throw invalid(`unknown subscription config "${name}"; known: ${subscriptionConfigNames.join(', ')}`);
    }
  }
  return config;
}

function parseQueueSetting(
  queue: QueueConfig,
  name: (typeof queueConfigNames)[number],
  value: string,
): QueueConfig {
  switch (name) {
    case 'ack.timeout.ms':
      return { ...queue, ackTimeoutMs: integer(name, value, 100, 12 * HOUR_MS) };
    case 'max.deliveries':
      return { ...queue, maxDeliveries: integer(name, value, 0, 1000) };
    case 'dead.letter.topic': {
      const reason = invalidTopicName(value);
      if (reason !== null) throw invalid(`dead.letter.topic "${value}": ${reason}`);
      return { ...queue, deadLetterTopic: value };
    }
    case 'retry.backoff.ms':
      return { ...queue, retry: { ...queue.retry, initialBackoffMs: integer(name, value, 0, 12 * HOUR_MS) } };
    case 'retry.backoff.max.ms':
      return { ...queue, retry: { ...queue.retry, maxBackoffMs: integer(name, value, 0, 12 * HOUR_MS) } };
    case 'retry.backoff.multiplier':
      return { ...queue, retry: { ...queue.retry, multiplier: decimal(name, value, 1, 100) } };
    case 'retry.jitter':
      return { ...queue, retry: { ...queue.retry, jitter: decimal(name, value, 0, 1) } };
    case 'max.unacked':
      return { ...queue, maxUnacked: integer(name, value, 1, 1_000_000) };
    case 'key.shared':
      return { ...queue, keyShared: flag(name, value) };
    case 'dead.letter.expired':
      return { ...queue, deadLetterExpired: flag(name, value) };
  }
}

/** The config as wire entries. */
export function subscriptionConfigEntries(config: SubscriptionConfig): Record<string, string> {
  const entries: Record<string, string> = {
    assignment: config.assignment,
    'session.timeout.ms': String(config.sessionTimeoutMs),
  };
  const queue = config.queue;
  if (queue === null) return entries;
  return {
    ...entries,
    'ack.timeout.ms': String(queue.ackTimeoutMs),
    'max.deliveries': String(queue.maxDeliveries),
    ...(queue.deadLetterTopic === null ? {} : { 'dead.letter.topic': queue.deadLetterTopic }),
    'retry.backoff.ms': String(queue.retry.initialBackoffMs),
    'retry.backoff.max.ms': String(queue.retry.maxBackoffMs),
    'retry.backoff.multiplier': String(queue.retry.multiplier),
    'retry.jitter': String(queue.retry.jitter),
    'max.unacked': String(queue.maxUnacked),
    'key.shared': String(queue.keyShared),
    'dead.letter.expired': String(queue.deadLetterExpired),
  };
}

/** Checks a start position from a client. */
export function checkStartPosition(start: StartPosition): void {
  if (!Number.isSafeInteger(start.value) || start.value < 0)
    throw invalid(`a start ${start.kind} must be a non-negative integer, got ${start.value}`);
}
