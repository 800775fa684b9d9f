/**
 * `eddy replay`: a fixed range of a topic (by default from its start to the
 * end offsets seen when the command starts), printed as `eddy consume` prints
 * events, at most `--rate` events a second, with progress lines, anomalies in
 * the offsets and a closing summary on stderr. Ctrl-C stops it with a summary.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import type { OffsetAnomaly, ReplayFrom, ReplayProgress, ReplayTo } from '../client/index.js';
import { formatJsonEvent } from '../events/index.js';
import { nonNegativeInteger, positiveInteger, urlOption } from './arguments.js';
import { print, startFrom, withClient } from './client-commands.js';

const report = (line: string): void => void process.stderr.write(line + '\n');

/** `earliest`, `offset:N` or `time:<ISO 8601>`. */
function replayFrom(value: string): ReplayFrom {
  if (value === 'latest') throw new InvalidArgumentError('a replay from latest has nothing to replay');
  return startFrom(value) as ReplayFrom;
}

/** `end` (the end offsets when the replay starts), `offset:N` (exclusive) or `time:<ISO 8601>`. */
function replayTo(value: string): ReplayTo {
  if (value === 'end') return 'end-at-start';
  if (value === 'earliest' || value === 'latest')
    throw new InvalidArgumentError(`expected end, offset:N or time:ISO, got "${value}"`);
  return startFrom(value) as ReplayTo;
}

function rate(value: string): number {
  const number = Number(value);
  if (value.trim() === '' || !Number.isFinite(number) || number <= 0)
    throw new InvalidArgumentError(`expected a positive number of events per second, got "${value}"`);
  return number;
}

const percent = (progress: ReplayProgress): string =>
  progress.total === 0 ? '100%' : `${Math.floor((progress.done / progress.total) * 100)}%`;

const describeAnomaly = (anomaly: OffsetAnomaly): string =>
  `${anomaly.kind} in ${anomaly.topic}[${anomaly.partition}]: expected offset ${anomaly.expected}, got ${anomaly.got}`;

interface ReplayCliOptions {
  readonly url: string;
  readonly from: ReplayFrom;
  readonly to: ReplayTo;
  readonly partition?: number;
  readonly rate?: number;
  readonly progressMs: number;
  readonly json?: boolean;
}

export function replayCommand(): Command {
  return new Command('replay')
    .description(
      'print a range of a topic once, in offset order per partition, at most --rate events a second; ' +
        'progress, gaps and a summary go to stderr',
    )
    .argument('<topic>', 'topic to replay')
    .addOption(
      new Option('--from <position>', 'earliest, offset:N or time:ISO')
        .argParser(replayFrom)
        .default('earliest'),
    )
    .addOption(
      new Option('--to <position>', 'end (the end offsets at start), offset:N (exclusive) or time:ISO')
        .argParser(replayTo)
        .default('end-at-start', 'end'),
    )
    .addOption(new Option('--partition <n>', 'one partition only').argParser(nonNegativeInteger))
    .addOption(new Option('--rate <n>', 'most events per second').argParser(rate))
    .addOption(
      new Option('--progress-ms <n>', 'how often to print progress').argParser(positiveInteger).default(1000),
    )
    .option('--json', 'print each event as one structured-mode CloudEvent per line, and a JSON summary')
    .addOption(urlOption())
    .action(async (topic: string, options: ReplayCliOptions) => {
      const controller = new AbortController();
      const stop = (): void => controller.abort();
      process.once('SIGINT', stop);
      try {
        const result = await withClient(options.url, (client) =>
          client.replay(
            topic,
            {
              from: options.from,
              to: options.to,
              ...(options.partition === undefined ? {} : { partitions: [options.partition] }),
              ...(options.rate === undefined ? {} : { ratePerSecond: options.rate }),
              progressIntervalMs: options.progressMs,
              onProgress: (progress) =>
                report(
                  options.json
                    ? JSON.stringify({
                        progress: {
                          done: progress.done,
                          remaining: progress.remaining,
                          total: progress.total,
                        },
                      })
                    : `replay: ${progress.done}/${progress.total} done, ${progress.remaining} remaining (${percent(progress)})`,
                ),
              onAnomaly: (anomaly) =>
                report(options.json ? JSON.stringify({ anomaly }) : `replay: ${describeAnomaly(anomaly)}`),
              signal: controller.signal,
            },
            ({ partition, offset, event }) =>
              print(
                options.json
                  ? formatJsonEvent(event)
                  : `${topic}[${partition}]@${offset} ${event.type} ${event.id}`,
              ),
          ),
        );
        const { events, anomalies, aborted, elapsedMs, partitions } = result;
        if (options.json) {
          report(JSON.stringify({ summary: { topic, events, anomalies, aborted, elapsedMs, partitions } }));
          return;
        }
        const ranges = partitions.map((p) => `[${p.partition}] ${p.fromOffset}..${p.toOffset}`).join('  ');
        report(
          `replayed ${events} events of ${topic} in ${(elapsedMs / 1000).toFixed(2)} s` +
            `${aborted ? ' (stopped early)' : ''}: ${ranges}; ` +
            `${anomalies.gap} gaps, ${anomalies.reorder} reorders, ${anomalies.truncated} truncations`,
        );
      } finally {
        process.removeListener('SIGINT', stop);
      }
    });
}
