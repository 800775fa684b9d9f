/** What other layers may import from the broker layer. */
export {
  Broker,
  toBrokerError,
  type BrokerOptions,
  type Fetched,
  type Published,
  type PublishMeta,
  type PublishTarget,
  type PublishTransforms,
  type ScheduledStats,
  type TransformedBlock,
} from './broker.js';
export {
  TopicTransforms,
  TransformEventError,
  parseTopicTransformSpec,
  publishTrapPolicies,
  type PublishTrapPolicy,
  type TopicTransformSpec,
  type TopicTransformView,
} from './topic-transforms.js';
export { DELIVERY_DELAY_MS_MAX } from './scheduler.js';
export {
  LocalPartition,
  localPartitions,
  type Partition,
  type PartitionAppend,
  type PartitionHost,
  type ReadVisitor,
} from './partition.js';
export { murmur2, partitionForKey } from '../protocol/index.js';
export { SubscriptionFilter } from './subscription-filter.js';
export {
  checkTopicDefaults,
  configNames,
  defaultTopicConfig,
  parseTopicConfig,
  type TopicConfig,
} from './topic-config.js';
export {
  invalidTopicName,
  SCHEDULED_TOPIC_PREFIX,
  SYSTEM_TOPIC_PREFIX,
  TOPIC_NAME_BYTES_MAX,
} from './topic-name.js';
export {
  DurableSubscriptions,
  type CreateSubscriptionRequest,
  type Membership,
  type TopicsView,
} from './durable-subscriptions.js';
export type { MemberHandle } from './consumer-group.js';
export { resolveStart } from './start-position.js';
export {
  assignmentStrategies,
  subscriptionConfigNames,
  type AssignmentStrategy,
  type SubscriptionConfig,
} from './subscription-config.js';
export { EXPIRY_CONSUMER, QueueGroup, monotonicMs } from './queue-group.js';
export { DeadLetterOffice, type DeadLetterBroker, type DeadLetterView } from './dead-letter-office.js';
export { eventBlockOf, forEachStoredEvent } from './stored-events.js';
export { FILTER_EVENTS_TOPIC } from './topic-name.js';
export { type DeadLetterOrigin, type DeadLetterReason } from './dead-letters.js';
export {
  RoutingRules,
  RULE_SETS_MAX,
  type PublishRouting,
  type RoutedCopy,
  type RoutingStats,
  type RuleSetView,
} from './routing/routing-rules.js';
export {
  DESTINATIONS_MAX,
  InvalidRuleSetError,
  RULES_MAX,
  RuleSet,
  invalidRuleSetId,
  type Destination,
  type Destinations,
  type DryRunResult,
  type RoutingRule,
  type RoutingRuleSetSpec,
} from './routing/rule-set.js';
export { inflateEventBlock } from './stored-events.js';
