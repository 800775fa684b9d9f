/** What other layers may import from the protocol layer. */
export { murmur2, partitionForKey } from './partitioner.js';
export { invalidTopicPattern, isTopicPattern, matchesTopicPattern } from './topic-pattern.js';
export { isKept, keptCount } from './kept-events.js';
export * from './error-codes.js';
export * from './event-batch.js';
export * from './frame.js';
export { verifyBuffer, defaultVerifyLimits, type VerifyLimits, type TableName } from './verify.js';
export { forEachStoredBatch, STORED_BATCH_HEADER_BYTES, type StoredBatch } from './stored-batch.js';
export { EventBlockReader, EventSlot, ExtensionSlot } from './event-block-reader.js';
export { BlockStrings } from './block-strings.js';
export type { DeadLetterOrigin, DeadLetterTopic, Redrive, RedriveRequest } from './dead-letters.js';
