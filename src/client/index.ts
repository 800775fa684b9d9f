/**
 * `eddy`: the client SDK. Runs in Node (20+) and in browsers.
 */
export {
  connect,
  EddyClient,
  type ClientOptions,
  type DeliveredEvent,
  type EventInput,
  type FetchedBatch,
  type FetchResult,
  type PublishOptions,
  type PublishResult,
  type StartFrom,
  type SubscribeOptions,
  type Subscription,
  type CreateSubscriptionOptions,
  type WasmFilterOptions,
} from './client.js';
export type { GroupSubscription, JoinOptions, PullSubscription } from './group-subscriptions.js';
export type { DeadLetter, DeadLetters } from './dead-letters.js';
export type { DeadLetterOrigin, DeadLetterTopic, Redrive, RedriveRequest } from '../protocol/index.js';
export type {
  Routing,
  RoutingDryRun,
  RoutingRuleInput,
  RoutingRuleSet,
  RoutingRuleSetInput,
  RoutingRuleSetProblem,
} from './routing.js';
export type { PublishTrapPolicy, TopicTransform, Transforms } from './transforms.js';
export type {
  OffsetAnomaly,
  ReplayFrom,
  ReplayHandler,
  ReplayOptions,
  ReplayPartition,
  ReplayProgress,
  ReplayResult,
  ReplayTo,
} from './replay.js';
export type { WebSocketFactory, WebSocketLike } from './connection.js';
export type { Partitioner } from './publisher.js';
export {
  createEvent,
  dataAsJson,
  dataAsText,
  type CloudEvent,
  type CreateEventInput,
} from '../events/index.js';
export {
  BrokerError,
  errorCodes,
  isBrokerError,
  isTopicPattern,
  matchesTopicPattern,
  partitionForKey,
  type ErrorName,
  type SubscriptionDescription,
  type SubscriptionPartition,
  type SubscriptionType,
  type TopicDescription,
  type TopicPartition,
} from '../protocol/index.js';
