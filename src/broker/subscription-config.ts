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
import { invalidTopicName } from './topic-name.js';

export const assignmentStrategies = ['range', 'round-robin', 'sticky'] as const;
/** How a `stream` subscription shares partitions among its members (group-assignment.ts). */
export type AssignmentStrategy = (typeof assignmentStrategies)[number];

export interface SubscriptionConfig {
  readonly assignment: AssignmentStrategy;
  /** A member that sends no heartbeat for this long is removed and its partitions reassigned. */
  readonly sessionTimeoutMs: number;
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
};

const SESSION_TIMEOUT_MS_MIN = 100;
const SESSION_TIMEOUT_MS_MAX = 30 * 60 * 1000;

export const subscriptionConfigNames = ['assignment', 'session.timeout.ms'] as const;
type ConfigName = (typeof subscriptionConfigNames)[number];

function invalid(message: string): BrokerError {
  return new BrokerError('INVALID_REQUEST', message);
}

/** Why `name` cannot name a durable subscription, or null if it can (the rules of topic names). */
export function invalidSubscriptionName(name: string): string | null {
  const reason = invalidTopicName(name);
  return reason === null ? null : reason.replaceAll('topic name', 'subscription name');
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
  return {
    name: request.name,
    topic: request.topic,
    type: request.type as SubscriptionType,
    filter: request.filter,
    config: parseSubscriptionConfig(request.config),
  };
}

export function parseSubscriptionConfig(entries: Readonly<Record<string, string>>): SubscriptionConfig {
  let config = defaultSubscriptionConfig;
  for (const [name, value] of Object.entries(entries)) {
    switch (name as ConfigName) {
      case 'assignment':
        if (!(assignmentStrategies as readonly string[]).includes(value))
          throw invalid(`assignment must be one of ${assignmentStrategies.join(', ')}, got "${value}"`);
        config = { ...config, assignment: value as AssignmentStrategy };
        break;
      case 'session.timeout.ms': {
        const ms = /^\d+$/.test(value) ? Number(value) : Number.NaN;
        if (!Number.isSafeInteger(ms) || ms < SESSION_TIMEOUT_MS_MIN || ms > SESSION_TIMEOUT_MS_MAX)
          throw invalid(
            `session.timeout.ms must be an integer from ${SESSION_TIMEOUT_MS_MIN} to ${SESSION_TIMEOUT_MS_MAX}, got "${value}"`,
          );
        config = { ...config, sessionTimeoutMs: ms };
        break;
      }
      default:
        throw invalid(`unknown subscription config "${name}"; known: ${subscriptionConfigNames.join(', ')}`);
    }
  }
  return config;
}

/** The config as wire entries. */
export function subscriptionConfigEntries(config: SubscriptionConfig): Record<string, string> {
  return { assignment: config.assignment, 'session.timeout.ms': String(config.sessionTimeoutMs) };
}

/** Checks a start position from a client. */
export function checkStartPosition(start: StartPosition): void {
  if (!Number.isSafeInteger(start.value) || start.value < 0)
    throw invalid(`a start ${start.kind} must be a non-negative integer, got ${start.value}`);
}
