/**
 * Topic names are hierarchical, dot-separated words (`orders.eu.created`), so
 * that wildcard subscriptions (`orders.*`, `orders.>`) can match them level by
 * level. `$sys.` is reserved for the broker's own topics.
 */
export const TOPIC_NAME_BYTES_MAX = 249; // Kafka's limit, so names carry over both ways

const TOPIC_NAME = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;
export const SYSTEM_TOPIC_PREFIX = '$sys.';
/**
 * `$sys.scheduled.<topic>` holds the batches scheduled for `<topic>` until
 * they are due (scheduler.ts). Never listed, described or readable through the
 * API; it goes with its topic.
 */
export const SCHEDULED_TOPIC_PREFIX = `${SYSTEM_TOPIC_PREFIX}scheduled.`;
/** Longest topic name that can have scheduled batches: its schedule topic's name is a directory name (255 bytes). */
export const SCHEDULED_TOPIC_NAME_BYTES_MAX = 255 - SCHEDULED_TOPIC_PREFIX.length;
/**
 * `$sys.filters` carries the broker's reports about WASM filters (quarantined,
 * disabled, trapping; src/server/wasm-filters.ts), made when the first filter
 * loads. Described, read and subscribed to by its exact name; never listed or
 * matched by a pattern, and read-only: no publish, grow or delete through the API.
 */
export const FILTER_EVENTS_TOPIC = `${SYSTEM_TOPIC_PREFIX}filters`;

/** Why `name` cannot name a user topic, or null if it can. */
export function invalidTopicName(name: string): string | null {
  if (name.length === 0) return 'a topic name must not be empty';
  if (name.length > TOPIC_NAME_BYTES_MAX)
    return `a topic name must be at most ${TOPIC_NAME_BYTES_MAX} characters`;
  if (name.startsWith(SYSTEM_TOPIC_PREFIX))
    return `the "${SYSTEM_TOPIC_PREFIX}" prefix is reserved for the broker`;
  if (!TOPIC_NAME.test(name))
    return 'a topic name is dot-separated words of letters, digits, "-" and "_" (no empty word)';
  return null;
}
