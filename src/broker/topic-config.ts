/**
 * A topic's settings, as stored in its `topic.json` and as carried on the
 * wire (string entries with Kafka-style names, so operators recognise them).
 */
import { BrokerError } from '../protocol/index.js';
import type { FlushPolicy } from '../log/index.js';

export interface TopicConfig {
  readonly partitions: number;
  /** When appended events reach the disk; `durable` acks flush regardless. */
  readonly flush: FlushPolicy;
  /** `flush: interval`: the longest appended events wait for their group commit (it also runs every MiB). */
  readonly flushMs: number;
  readonly segmentBytes: number;
  /** Delete closed segments older than this; null keeps them forever. */
  readonly retentionMs: number | null;
  /** Delete the oldest closed segments while a partition is larger than this; null: no limit. */
  readonly retentionBytes: number | null;
  /**
   * How long a CloudEvent's (source, id) is remembered after its batch is
   * stored: a publish that repeats it within the window is acked with the
   * original offsets and not stored again (docs/operations.md, "Duplicate
   * detection"). Null: off, and publishing reads no event ids.
   */
  readonly dedupeWindowMs: number | null;
  /** Most (source, id) pairs the window remembers; past it the oldest are forgotten early. */
  readonly dedupeMaxIds: number;
  /**
   * Events stored longer ago than this are not delivered to subscriptions any
   * more (they stay in the log until retention; fetches still read them); a
   * queue subscription acks or dead-letters them (docs/subscriptions.md). Null: no limit.
   */
  readonly messageTtlMs: number | null;
}

export const PARTITIONS_MAX = 1024;
const SEGMENT_BYTES_MIN = 64 * 1024;
const SEGMENT_BYTES_MAX = 1024 ** 3;
/** A day: the window is rebuilt from the log at every open, by reading this much of each partition's tail. */
export const DEDUPE_WINDOW_MS_MAX = 24 * 60 * 60 * 1000;
export const DEDUPE_MAX_IDS_MAX = 10_000_000;

/** An hour: a longer window would leave `leader` acks exposed to a power loss for longer than anyone means to. */
export const FLUSH_MS_MAX = 60 * 60 * 1000;
/** The window of topics stored before `flush.ms` existed, which they keep. */
const FLUSH_MS_BEFORE_THE_SETTING = 5;

export const defaultTopicConfig: TopicConfig = {
  partitions: 1,
  flush: 'interval',
  // 50, not 5: the broker's CPU at 20,000 and 100,000 events/s -40 % (docs/performance.md,
  // "The group-commit window"), for a power-loss window of leader acks still far inside the peers'.
  flushMs: 50,
  segmentBytes: 128 * 1024 * 1024,
  retentionMs: null,
  retentionBytes: null,
  dedupeWindowMs: null,
  dedupeMaxIds: 1_000_000,
  messageTtlMs: null,
};

/** Config entry names accepted on the wire and in the HTTP API. */
export const configNames = [
  'flush',
  'flush.ms',
  'segment.bytes',
  'retention.ms',
  'retention.bytes',
  'dedupe.window.ms',
  'dedupe.max.ids',
  'message.ttl.ms',
] as const;
type ConfigName = (typeof configNames)[number];

function invalid(message: string): BrokerError {
  return new BrokerError('INVALID_REQUEST', message);
}

function positiveInteger(name: string, value: string, min: number, max: number): number {
  const number = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < min || number > max)
    throw invalid(`${name} must be an integer from ${min} to ${max}, got "${value}"`);
  return number;
}

/** Builds a topic's config from wire entries over `defaults`; unknown names and bad values throw INVALID_REQUEST. */
export function parseTopicConfig(
  partitions: number,
  entries: Readonly<Record<string, string>>,
  defaults: TopicConfig = defaultTopicConfig,
): TopicConfig {
  if (!Number.isSafeInteger(partitions) || partitions < 1 || partitions > PARTITIONS_MAX)
    throw invalid(`partitions must be an integer from 1 to ${PARTITIONS_MAX}, got ${partitions}`);
  let config: TopicConfig = { ...defaults, partitions };
  for (const [name, value] of Object.entries(entries)) {
    switch (name as ConfigName) {
      case 'flush':
        if (value !== 'never' && value !== 'interval' && value !== 'always')
          throw invalid(`flush must be never, interval or always, got "${value}"`);
        config = { ...config, flush: value };
        break;
      case 'flush.ms':
        config = { ...config, flushMs: positiveInteger(name, value, 1, FLUSH_MS_MAX) };
        break;
      case 'segment.bytes':
        config = {
          ...config,
          segmentBytes: positiveInteger(name, value, SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX),
        };
        break;
      case 'retention.ms':
        config = { ...config, retentionMs: positiveInteger(name, value, 1, Number.MAX_SAFE_INTEGER) };
        break;
      case 'retention.bytes':
        config = { ...config, retentionBytes: positiveInteger(name, value, 1, Number.MAX_SAFE_INTEGER) };
        break;
      case 'dedupe.window.ms':
        config = { ...config, dedupeWindowMs: positiveInteger(name, value, 1, DEDUPE_WINDOW_MS_MAX) };
        break;
      case 'dedupe.max.ids':
        config = { ...config, dedupeMaxIds: positiveInteger(name, value, 1, DEDUPE_MAX_IDS_MAX) };
        break;
      case 'message.ttl.ms':
        config = { ...config, messageTtlMs: positiveInteger(name, value, 1, Number.MAX_SAFE_INTEGER) };
        break;
      default:
        throw invalid(`unknown topic config "${name}"; known: ${configNames.join(', ')}`);
    }
  }
  return config;
}

/** The config as wire entries (partitions travel separately). */
export function configEntries(config: TopicConfig): Record<string, string> {
  const entries: Record<string, string> = {
    flush: config.flush,
    'flush.ms': String(config.flushMs),
    'segment.bytes': String(config.segmentBytes),
  };
  if (config.retentionMs !== null) entries['retention.ms'] = String(config.retentionMs);
  if (config.retentionBytes !== null) entries['retention.bytes'] = String(config.retentionBytes);
  if (config.dedupeWindowMs !== null) {
    entries['dedupe.window.ms'] = String(config.dedupeWindowMs);
    entries['dedupe.max.ids'] = String(config.dedupeMaxIds);
  }
  if (config.messageTtlMs !== null) entries['message.ttl.ms'] = String(config.messageTtlMs);
  return entries;
}

/**
 * A config as read from a `topic.json` written before some settings existed:
 * those settings take the value that keeps the topic as it was (off).
 */
export function storedTopicConfig(
  stored: Omit<TopicConfig, 'flushMs' | 'dedupeWindowMs' | 'dedupeMaxIds' | 'messageTtlMs'> &
    Partial<TopicConfig>,
): TopicConfig {
  return {
    ...stored,
    flushMs: stored.flushMs ?? FLUSH_MS_BEFORE_THE_SETTING,
    dedupeWindowMs: stored.dedupeWindowMs ?? null,
    dedupeMaxIds: stored.dedupeMaxIds ?? defaultTopicConfig.dedupeMaxIds,
    messageTtlMs: stored.messageTtlMs ?? null,
  };
}

/**
 * Checks settings given as defaults for new topics (the broker's config file):
 * each present one must be what a topic could be created with. Throws a
 * RangeError naming the setting.
 */
export function checkTopicDefaults(defaults: Partial<TopicConfig>): void {
  const known = new Set(Object.keys(defaultTopicConfig));
  for (const name of Object.keys(defaults)) {
    if (!known.has(name))
      throw new RangeError(`topicDefaults.${name} is not a topic setting (${[...known].join(', ')})`);
  }
  const entries: Record<string, string> = {};
  if (defaults.flush !== undefined) entries['flush'] = String(defaults.flush);
  if (defaults.flushMs !== undefined) entries['flush.ms'] = String(defaults.flushMs);
  if (defaults.segmentBytes !== undefined) entries['segment.bytes'] = String(defaults.segmentBytes);
  if (defaults.retentionMs != null) entries['retention.ms'] = String(defaults.retentionMs);
  if (defaults.retentionBytes != null) entries['retention.bytes'] = String(defaults.retentionBytes);
  if (defaults.dedupeWindowMs != null) entries['dedupe.window.ms'] = String(defaults.dedupeWindowMs);
  if (defaults.dedupeMaxIds !== undefined) entries['dedupe.max.ids'] = String(defaults.dedupeMaxIds);
  if (defaults.messageTtlMs != null) entries['message.ttl.ms'] = String(defaults.messageTtlMs);
  try {
    parseTopicConfig(defaults.partitions ?? 1, entries);
  } catch (error) {
    throw new RangeError(`topicDefaults: ${(error as Error).message}`, { cause: error });
  }
}
