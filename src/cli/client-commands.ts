/**
 * `eddy publish`, `eddy consume` and `eddy topics`: the client SDK from the
 * command line. `--url` (or EDDY_URL) picks the broker; `--json` prints
 * machine-readable output; a failure exits non-zero with one line of reason.
 */
import fs from 'node:fs';
import readline from 'node:readline';
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  connect,
  createEvent,
  dataAsText,
  isTopicPattern,
  matchesTopicPattern,
  type ClientOptions,
  type CloudEvent,
  type EddyClient,
  type CreateEventInput,
  type PublishOptions,
  type StartFrom,
} from '../client/index.js';
import { formatJsonEvent, parseJsonEvent } from '../events/index.js';
import { compile as compileCesql } from '../filters/cesql.js';
import { configEntries, nonNegativeInteger, positiveInteger, urlOption } from './arguments.js';

export async function withClient<T>(
  url: string,
  use: (client: EddyClient) => Promise<T>,
  options: ClientOptions = {},
): Promise<T> {
  const client = await connect(url, { clientName: 'eddy-cli', reconnectMaxDelayMs: 0, ...options });
  try {
    return await use(client);
  } finally {
    await client.close();
  }
}

export const print = (line: string): void => void process.stdout.write(line + '\n');

function ackLevel(value: string): NonNullable<PublishOptions['ack']> {
  if (value !== 'none' && value !== 'leader' && value !== 'durable')
    throw new InvalidArgumentError(`expected none, leader or durable, got "${value}"`);
  return value;
}

/** `earliest`, `latest`, `offset:N` or `time:<ISO 8601>`. */
export function startFrom(value: string): StartFrom {
  if (value === 'earliest' || value === 'latest') return value;
  if (value.startsWith('offset:')) return { offset: nonNegativeInteger(value.slice(7)) };
  if (value.startsWith('time:')) {
    const time = Date.parse(value.slice(5));
    if (Number.isNaN(time)) throw new InvalidArgumentError(`"${value.slice(5)}" is not an ISO 8601 time`);
    return { time };
  }
  throw new InvalidArgumentError(`expected earliest, latest, offset:N or time:ISO, got "${value}"`);
}

/** `--deliver-at`: an ISO 8601 time (with its offset, or UTC) or epoch milliseconds. */
export function deliveryTime(value: string): Date {
  const time = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isSafeInteger(time))
    throw new InvalidArgumentError(`expected an ISO 8601 time or epoch milliseconds, got "${value}"`);
  return new Date(time);
}

/** `--data` is JSON when it parses as JSON, text otherwise. */
function dataOf(value: string): unknown {
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
}

async function* eventsFromFile(file: string): AsyncGenerator<CloudEvent> {
  const lines = readline.createInterface({
    input: file === '-' ? process.stdin : fs.createReadStream(file),
    crlfDelay: Infinity,
  });
  let number = 0;
  for await (const line of lines) {
    number++;
    if (line.trim() === '') continue;
    try {
      yield parseJsonEvent(line);
    } catch (error) {
      throw new Error(`${file}:${number}: ${(error as Error).message}`, { cause: error });
    }
  }
}

interface PublishCliOptions {
  readonly url: string;
  readonly type?: string;
  readonly source?: string;
  readonly data?: string;
  readonly subject?: string;
  readonly key?: string;
  readonly partition?: number;
  readonly ack: NonNullable<PublishOptions['ack']>;
  readonly file?: string;
  readonly json?: boolean;
  readonly idempotent?: boolean;
  readonly deliverAt?: Date;
}

export function publishCommand(): Command {
  return new Command('publish')
    .description('publish one event (--type, --source, --data) or a file of JSON events, one per line')
    .argument('<topic>', 'topic to publish to')
    .option('--type <type>', 'CloudEvents type')
    .option('--source <uri>', 'CloudEvents source')
    .option('--data <data>', 'event data: JSON if it parses as JSON, text otherwise')
    .option('--subject <subject>', 'CloudEvents subject')
    .option('--key <key>', 'partitioning key')
    .addOption(new Option('--partition <n>', 'explicit partition').argParser(nonNegativeInteger))
    .addOption(new Option('--ack <level>', 'none, leader or durable').argParser(ackLevel).default('leader'))
    .option('--file <file>', 'structured-mode JSON events, one per line ("-" for stdin)')
    .option('--json', 'print one JSON object per publish')
    .option(
      '--idempotent',
      'number batches under a producer id and resend them over a new connection if one drops: each stored once',
    )
    .addOption(
      new Option(
        '--deliver-at <time>',
        'scheduled delivery: subscribers see the events from this ISO 8601 time (or epoch ms) on',
      ).argParser(deliveryTime),
    )
    .addOption(urlOption())
    .action(async (topic: string, options: PublishCliOptions) => {
      const publishOptions: PublishOptions = {
        ack: options.ack,
        ...(options.key === undefined ? {} : { key: options.key }),
        ...(options.partition === undefined ? {} : { partition: options.partition }),
        ...(options.deliverAt === undefined ? {} : { deliverAt: options.deliverAt }),
      };
      await withClient(
        options.url,
        async (client) => {
          const report = (
            result: { partition: number; baseOffset: number; lastOffset: number; deliverAt?: Date },
            id: string,
          ): void =>
            print(
              options.json
                ? JSON.stringify({ topic, id, ...result })
                : result.deliverAt !== undefined
                  ? `scheduled ${id} for ${topic} at ${result.deliverAt.toISOString()}`
                  : `published ${id} to ${topic}[${result.partition}] at offset ${result.baseOffset}`,
            );
          if (options.file !== undefined) {
            const pending: Promise<void>[] = [];
            for await (const event of eventsFromFile(options.file)) {
              pending.push(
                client.publish(topic, event, publishOptions).then((result) => report(result, event.id)),
              );
            }
            await Promise.all(pending);
            return;
          }
          if (options.type === undefined || options.source === undefined)
            throw new InvalidArgumentError('publish needs --type and --source, or --file');
          const input: CreateEventInput = {
            type: options.type,
            source: options.source,
            ...(options.subject === undefined ? {} : { subject: options.subject }),
            ...(options.data === undefined ? {} : { data: dataOf(options.data) }),
          };
          const event = createEvent(input);
          report(await client.publish(topic, event, publishOptions), event.id);
        },
        options.idempotent === true ? { idempotence: true, reconnectMaxDelayMs: 2000 } : {},
      );
    });
}

interface RequestCliOptions {
  readonly url: string;
  readonly type: string;
  readonly source: string;
  readonly data?: string;
  readonly subject?: string;
  readonly key?: string;
  readonly timeoutMs: number;
  readonly json?: boolean;
}

export function requestCommand(): Command {
  return new Command('request')
    .description(
      'publish one event as a request and print the reply (a responder answers with reply() in the SDK)',
    )
    .argument('<topic>', 'topic the responders read')
    .requiredOption('--type <type>', 'CloudEvents type')
    .requiredOption('--source <uri>', 'CloudEvents source')
    .option('--data <data>', 'event data: JSON if it parses as JSON, text otherwise')
    .option('--subject <subject>', 'CloudEvents subject')
    .option('--key <key>', 'partitioning key')
    .addOption(
      new Option('--timeout-ms <n>', 'how long to wait for the reply')
        .argParser(positiveInteger)
        .default(5000),
    )
    .option('--json', 'print the reply as one structured-mode CloudEvent')
    .addOption(urlOption())
    .action(async (topic: string, options: RequestCliOptions) => {
      const input: CreateEventInput = {
        type: options.type,
        source: options.source,
        ...(options.subject === undefined ? {} : { subject: options.subject }),
        ...(options.data === undefined ? {} : { data: dataOf(options.data) }),
      };
      const reply = await withClient(options.url, (client) =>
        client.request(topic, input, {
          timeoutMs: options.timeoutMs,
          ...(options.key === undefined ? {} : { key: options.key }),
        }),
      );
      print(
        options.json
          ? formatJsonEvent(reply.event)
          : `${reply.event.type} ${reply.event.id}${reply.event.data === undefined ? '' : ` ${dataAsText(reply.event) ?? ''}`}`,
      );
    });
}

interface ConsumeCliOptions {
  readonly url: string;
  readonly from: StartFrom;
  readonly partition?: number;
  readonly max?: number;
  readonly untilEnd?: boolean;
  readonly json?: boolean;
  readonly filter?: string;
}

export function consumeCommand(): Command {
  return new Command('consume')
    .description('print the events of a topic, or of every topic matching a pattern (orders.*, orders.>)')
    .argument('<topic>', 'topic or pattern to read')
    .addOption(
      new Option('--from <position>', 'earliest, latest, offset:N or time:ISO')
        .argParser(startFrom)
        .default('latest'),
    )
    .addOption(new Option('--partition <n>', 'one partition only').argParser(nonNegativeInteger))
    .addOption(new Option('--max <n>', 'stop after this many events').argParser(positiveInteger))
    .option('--until-end', 'stop once the end offsets seen at start are reached')
    .option(
      '--filter <cesql>',
      'only events matching this CloudEvents SQL expression, e.g. "type = \'order.created\'"',
    )
    .option('--json', 'print each event as one structured-mode CloudEvent per line')
    .addOption(urlOption())
    .action(async (topic: string, options: ConsumeCliOptions) => {
      await withClient(options.url, async (client) => {
        const pattern = isTopicPattern(topic);
        if (pattern && options.partition !== undefined)
          throw new InvalidArgumentError('--partition does not go with a topic pattern');
        // The topics read now; a pattern also picks up topics created while it runs.
        const topics = pattern
          ? (await client.listTopics()).filter((description) => matchesTopicPattern(topic, description.name))
          : [await client.describeTopic(topic)];
        const positions = topics.flatMap((description) =>
          description.partitions
            .filter((p) => options.partition === undefined || p.partition === options.partition)
            .map((p) => ({ id: `${description.name}[${p.partition}]`, ...p })),
        );
        if (!pattern && positions.length === 0)
          throw new InvalidArgumentError(`topic ${topic} has no partition ${options.partition}`);
        const localFilter =
          options.filter !== undefined && options.untilEnd ? compileCesql(options.filter) : null;
        // --until-end: what is left to read per partition, from the end offsets seen now.
        const ends = new Map(positions.map((p) => [p.id, p.endOffset]));
        let printed = 0;
        let finish: () => void = () => undefined;
        const finished = new Promise<void>((resolve) => (finish = resolve));
        const remaining = new Set(
          positions.filter((p) => options.from !== 'latest' && p.endOffset > p.startOffset).map((p) => p.id),
        );
        const subscription = await client.subscribe(
          topic,
          {
            from: options.from,
            ...(options.partition === undefined ? {} : { partition: options.partition }),
            // With --until-end the filter runs here: events the broker filtered out would leave no
            // trace to tell the end by.
            ...(options.filter === undefined || options.untilEnd ? {} : { filter: { sql: options.filter } }),
          },
          ({ topic: from, partition, offset, event }) => {
            const id = `${from}[${partition}]`;
            if (localFilter !== null && !localFilter.matches({ ...event.extensions, ...event })) {
              if (offset + 1 >= (ends.get(id) ?? 0)) remaining.delete(id);
              if (options.untilEnd && remaining.size === 0) finish();
              return;
            }
            if (options.max !== undefined && printed >= options.max) return;
            if (options.untilEnd && offset >= (ends.get(id) ?? 0)) return;
            printed++;
            print(options.json ? formatJsonEvent(event) : `${id}@${offset} ${event.type} ${event.id}`);
            if (options.max !== undefined && printed >= options.max) finish();
            if (offset + 1 >= (ends.get(id) ?? 0)) remaining.delete(id);
            if (options.untilEnd && remaining.size === 0) finish();
          },
        );
        if (options.untilEnd && remaining.size === 0) finish(); // nothing to wait for
        await finished;
        await subscription.close();
      });
    });
}

export function topicsCommand(): Command {
  const topics = new Command('topics').description('create, list, describe and delete topics');
  const describeLine = (t: {
    name: string;
    partitions: readonly { partition: number; startOffset: number; endOffset: number }[];
  }): string =>
    `${t.name}  partitions=${t.partitions.length}  ` +
    t.partitions.map((p) => `[${p.partition}] ${p.startOffset}..${p.endOffset}`).join('  ');
  topics
    .command('create')
    .argument('<name>', 'topic name, dot-separated words')
    .addOption(new Option('--partitions <n>', 'number of partitions').argParser(positiveInteger).default(1))
    .option(
      '--config <entry...>',
      'settings as name=value (flush, segment.bytes, retention.ms, retention.bytes)',
    )
    .option('--json', 'print the topic as JSON')
    .addOption(urlOption())
    .action(
      async (
        name: string,
        options: { partitions: number; config?: string[]; json?: boolean; url: string },
      ) => {
        const config = configEntries(options.config);
        const created = await withClient(options.url, (client) =>
          client.createTopic(name, { partitions: options.partitions, config }),
        );
        print(options.json ? JSON.stringify(created) : `created ${describeLine(created)}`);
      },
    );
  topics
    .command('list')
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(async (options: { json?: boolean; url: string }) => {
      const list = await withClient(options.url, (client) => client.listTopics());
      if (options.json) print(JSON.stringify(list));
      else for (const topic of list) print(describeLine(topic));
    });
  topics
    .command('describe')
    .argument('<name>')
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(async (name: string, options: { json?: boolean; url: string }) => {
      const topic = await withClient(options.url, (client) => client.describeTopic(name));
      print(
        options.json
          ? JSON.stringify(topic)
          : `${describeLine(topic)}  config=${JSON.stringify(topic.config)}`,
      );
    });
  topics
    .command('add-partitions')
    .description('grow a topic to --partitions partitions; keys map anew, as in Kafka')
    .argument('<name>')
    .addOption(
      new Option('--partitions <n>', 'the new total').argParser(positiveInteger).makeOptionMandatory(),
    )
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(async (name: string, options: { partitions: number; json?: boolean; url: string }) => {
      const topic = await withClient(options.url, (client) => client.addPartitions(name, options.partitions));
      print(options.json ? JSON.stringify(topic) : describeLine(topic));
    });
  topics
    .command('delete')
    .argument('<name>')
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(async (name: string, options: { json?: boolean; url: string }) => {
      await withClient(options.url, (client) => client.deleteTopic(name));
      print(options.json ? JSON.stringify({ deleted: name }) : `deleted ${name}`);
    });
  return topics;
}
