/**
 * `eddy subscriptions`: durable subscriptions from the command line — create,
 * list (with lag), describe, seek, set-filter (swap a WASM filter version),
 * delete — and `join`, which reads one as a member of its group, committing
 * as it goes.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { isBrokerError, type SubscriptionDescription, type SubscriptionType } from '../client/index.js';
import { formatJsonEvent } from '../events/index.js';
import { configEntries, nonNegativeInteger, positiveInteger, urlOption } from './arguments.js';
import { print, startFrom, withClient } from './client-commands.js';

const types = ['stream', 'queue', 'exclusive', 'failover'] as const;
const trapPolicies = ['skip', 'dead-letter', 'disable'] as const;

function subscriptionType(value: string): SubscriptionType {
  if (!(types as readonly string[]).includes(value))
    throw new InvalidArgumentError(`expected one of ${types.join(', ')}, got "${value}"`);
  return value as SubscriptionType;
}

/** A filter given on the command line: a JSON filter (array, object) or a CloudEvents SQL expression. */
function filterArgument(value: string): unknown {
  const trimmed = value.trim();
  if (trimmed.startsWith('[') || trimmed.startsWith('{')) {
    try {
      return JSON.parse(trimmed) as unknown;
    } catch (error) {
      throw new InvalidArgumentError(`--filter is not valid JSON: ${(error as Error).message}`);
    }
  }
  return { sql: value };
}

function describeLines(s: SubscriptionDescription): string[] {
  const lag = s.partitions.reduce((sum, p) => sum + Math.max(0, p.endOffset - p.committed), 0);
  return [
    `${s.name}  ${s.subscriptionType}  topic=${s.topic}  members=${s.members.length}  lag=${lag}  generation=${s.generation}`,
    ...s.partitions.map(
      (p) =>
        `  ${p.topic}[${p.partition}]  committed=${p.committed}  end=${p.endOffset}  lag=${Math.max(0, p.endOffset - p.committed)}  member=${p.member ?? '-'}`,
    ),
  ];
}

export function subscriptionsCommand(): Command {
  const command = new Command('subscriptions').description(
    'durable subscriptions: consumer groups and their committed offsets',
  );
  command
    .command('create')
    .argument('<name>', 'subscription name, dot-separated words')
    .requiredOption('--topic <topic>', 'topic or pattern (orders.*, orders.>) to read')
    .addOption(new Option('--type <type>', types.join(', ')).argParser(subscriptionType).default('stream'))
    .addOption(
      new Option('--from <position>', 'earliest, latest, offset:N or time:ISO')
        .argParser(startFrom)
        .default('latest'),
    )
    .option(
      '--filter <filter>',
      'a CloudEvents SQL expression, or a JSON filter ([{"prefix": …}], {"wasm": "name@1"})',
    )
    .option('--config <entry...>', 'settings as name=value (assignment, session.timeout.ms)')
    .option('--json', 'print the subscription as JSON')
    .addOption(urlOption())
    .action(
      async (
        name: string,
        options: {
          topic: string;
          type: SubscriptionType;
          from: ReturnType<typeof startFrom>;
          filter?: string;
          config?: string[];
          json?: boolean;
          url: string;
        },
      ) => {
        const created = await withClient(options.url, (client) =>
          client.createSubscription(name, {
            topic: options.topic,
            type: options.type,
            from: options.from,
            ...(options.filter === undefined ? {} : { filter: filterArgument(options.filter) }),
            config: configEntries(options.config),
          }),
        );
        if (options.json) print(JSON.stringify(created));
        else for (const line of ['created', ...describeLines(created)]) print(line);
      },
    );
  command
    .command('list')
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(async (options: { json?: boolean; url: string }) => {
      const list = await withClient(options.url, (client) => client.listSubscriptions());
      if (options.json) print(JSON.stringify(list));
      else for (const s of list) print(describeLines(s)[0] as string);
    });
  command
    .command('describe')
    .argument('<name>')
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(async (name: string, options: { json?: boolean; url: string }) => {
      const described = await withClient(options.url, (client) => client.describeSubscription(name));
      if (options.json) print(JSON.stringify(described));
      else for (const line of describeLines(described)) print(line);
    });
  command
    .command('seek')
    .description('move the subscription (all partitions, or --topic / --partition) to a position')
    .argument('<name>')
    .addOption(
      new Option('--to <position>', 'earliest, latest, offset:N or time:ISO')
        .argParser(startFrom)
        .makeOptionMandatory(),
    )
    .option('--topic <topic>', 'only this topic of the subscription')
    .addOption(new Option('--partition <n>', 'only this partition').argParser(nonNegativeInteger))
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(
      async (
        name: string,
        options: {
          to: ReturnType<typeof startFrom>;
          topic?: string;
          partition?: number;
          json?: boolean;
          url: string;
        },
      ) => {
        const described = await withClient(options.url, (client) =>
          client.seekSubscription(name, options.to, {
            ...(options.topic === undefined ? {} : { topic: options.topic }),
            ...(options.partition === undefined ? {} : { partition: options.partition }),
          }),
        );
        if (options.json) print(JSON.stringify(described));
        else for (const line of describeLines(described)) print(line);
      },
    );
  command
    .command('set-filter')
    .description("swap the subscription's WASM filter for another version, at a batch boundary")
    .argument('<name>')
    .requiredOption('--wasm <ref>', 'the filter to use from now on: name@version (a bare name: its latest)')
    .addOption(
      new Option('--on-trap <policy>', 'what a failure of the filter on an event does').choices(trapPolicies),
    )
    .option('--json', 'print the subscription as JSON')
    .addOption(urlOption())
    .action(
      async (
        name: string,
        options: { wasm: string; onTrap?: (typeof trapPolicies)[number]; json?: boolean; url: string },
      ) => {
        const swapped = await withClient(options.url, (client) =>
          client.setSubscriptionFilter(name, {
            wasm: options.wasm,
            ...(options.onTrap === undefined ? {} : { onTrap: options.onTrap }),
          }),
        ).catch((error: unknown) => {
          // The error's name first, as the HTTP commands print it, so scripts can tell the cases apart.
          throw isBrokerError(error) ? new Error(`${error.errorName}: ${error.message}`) : error;
        });
        const [head, ...partitions] = describeLines(swapped);
        if (options.json) print(JSON.stringify(swapped));
        else for (const line of [`${head as string}  filter=${swapped.filter}`, ...partitions]) print(line);
      },
    );
  command
    .command('delete')
    .argument('<name>')
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(async (name: string, options: { json?: boolean; url: string }) => {
      await withClient(options.url, (client) => client.deleteSubscription(name));
      print(options.json ? JSON.stringify({ deleted: name }) : `deleted ${name}`);
    });
  command
    .command('join')
    .description('read a subscription as a member of its group, printing events and committing them')
    .argument('<name>')
    .option('--member <name>', 'a member name that outlives this process (sticky assignment)')
    .addOption(new Option('--max <n>', 'stop after this many events (committed)').argParser(positiveInteger))
    .option('--json', 'print each event as one structured-mode CloudEvent per line')
    .addOption(urlOption())
    .action(async (name: string, options: { member?: string; max?: number; json?: boolean; url: string }) => {
      await withClient(options.url, async (client) => {
        // A queue acknowledges each event; the other types commit the position past it.
        const queue = (await client.describeSubscription(name)).subscriptionType === 'queue';
        let printed = 0;
        let finish: () => void = () => undefined;
        const finished = new Promise<void>((resolve) => (finish = resolve));
        process.once('SIGINT', () => finish());
        const member = await client.join(
          name,
          { ack: 'manual', ...(options.member === undefined ? {} : { member: options.member }) },
          async (delivered) => {
            if (options.max !== undefined && printed >= options.max) return;
            printed++;
            const { topic, partition, offset, event } = delivered;
            print(
              options.json
                ? formatJsonEvent(event)
                : `${topic}[${partition}]@${offset} ${event.type} ${event.id}`,
            );
            await (queue ? member.ack(delivered) : member.commit(delivered));
            if (options.max !== undefined && printed >= options.max) finish();
          },
        );
        await finished;
        await member.close();
      });
    });
  return command;
}
