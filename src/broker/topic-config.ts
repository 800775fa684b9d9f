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
  readonly segmentBytes: number;
  /** Delete closed segments older than this; null keeps them forever. */
  readonly retentionMs: number | null;
  /** Delete the oldest closed segments while a partition is larger than this; null: no limit. */
  readonly retentionBytes: number | null;
}

export const PARTITIONS_MAX = 1024;
const SEGMENT_BYTES_MIN = 64 * 1024;
const SEGMENT_BYTES_MAX = 1024 ** 3;

export const defaultTopicConfig: TopicConfig = {
  partitions: 1,
  flush: 'interval',
  segmentBytes: 128 * 1024 * 1024,
  retentionMs: null,
  retentionBytes: null,
};

/** Config entry names accepted on the wire and in the HTTP API. */
export const configNames = ['flush', 'segment.bytes', 'retention.ms', 'retention.bytes'] as const;
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
    'segment.bytes': String(config.segmentBytes),
  };
  if (config.retentionMs !== null) entries['retention.ms'] = String(config.retentionMs);
  if (config.retentionBytes !== null) entries['retention.bytes'] = String(config.retentionBytes);
  return entries;
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
  if (defaults.segmentBytes !== undefined) entries['segment.bytes'] = String(defaults.segmentBytes);
  if (defaults.retentionMs != null) entries['retention.ms'] = String(defaults.retentionMs);
  if (defaults.retentionBytes != null) entries['retention.bytes'] = String(defaults.retentionBytes);
  try {
    parseTopicConfig(defaults.partitions ?? 1, entries);
  } catch (error) {
    throw new RangeError(`topicDefaults: ${(error as Error).message}`, { cause: error });
  }
}
