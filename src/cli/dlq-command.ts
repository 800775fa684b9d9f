/**
 * `eddy dlq list|show|redrive`: dead-letter topics over the broker's HTTP API
 * (`/v1/dlq`): what died, where it came from and why, and sending it back.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { nonNegativeInteger, positiveInteger, urlOption } from './arguments.js';
import { call } from './http-call.js';

const print = (line: string): void => void process.stdout.write(line + '\n');

interface Listed {
  readonly deadLetterTopics: { topic: string; deadLetters: number; redriven: number }[];
}

interface Shown {
  readonly deadLetters: {
    partition: number;
    offset: number;
    origin: Record<string, string | number | null>;
    redrive: { target: string; targetOffset: number } | null;
    event: { id: string; type: string };
  }[];
  readonly nextOffset: number;
  readonly endOffset: number;
}

function offsetList(value: string): number[] {
  return value.split(',').map((part) => nonNegativeInteger(part.trim()));
}

export function dlqCommand(): Command {
  const command = new Command('dlq').description('dead-letter topics: list, show and redrive dead letters');
  command
    .command('list')
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(async (options: { json?: boolean; url: string }) => {
      const listed = (await call(options.url, '/v1/dlq')) as Listed;
      if (options.json) print(JSON.stringify(listed.deadLetterTopics));
      else
        for (const t of listed.deadLetterTopics)
          print(`${t.topic}  dead-letters=${t.deadLetters}  redriven=${t.redriven}`);
    });
  command
    .command('show')
    .argument('<topic>', 'the dead-letter topic')
    .addOption(new Option('--partition <n>').argParser(nonNegativeInteger).default(0))
    .addOption(new Option('--offset <n>', 'first offset').argParser(nonNegativeInteger).default(0))
    .addOption(new Option('--limit <n>').argParser(positiveInteger).default(100))
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(
      async (
        topic: string,
        options: { partition: number; offset: number; limit: number; json?: boolean; url: string },
      ) => {
        const query = `partition=${options.partition}&offset=${options.offset}&limit=${options.limit}`;
        const shown = (await call(options.url, `/v1/dlq/${encodeURIComponent(topic)}?${query}`)) as Shown;
        if (options.json) {
          print(JSON.stringify(shown));
          return;
        }
        for (const d of shown.deadLetters) {
          const o = d.origin;
          const redriven =
            d.redrive === null ? '' : `  redriven-to=${d.redrive.target}@${d.redrive.targetOffset}`;
          print(
            `${topic}[${d.partition}]@${d.offset} ${d.event.type} ${d.event.id}  from=${o['topic'] ?? '?'}[${o['partition'] ?? '?'}]@${o['offset'] ?? '?'}  reason=${o['reason'] ?? '?'}  attempts=${o['attempts'] ?? '?'}${o['error'] === null ? '' : `  error=${JSON.stringify(o['error'])}`}${redriven}`,
          );
        }
      },
    );
  command
    .command('redrive')
    .description('publish dead letters again: to the topic each came from, or --to a named one')
    .argument('<topic>', 'the dead-letter topic')
    .addOption(new Option('--partition <n>').argParser(nonNegativeInteger).default(0))
    .addOption(new Option('--offsets <list>', 'these dead letters, e.g. 3,7,9').argParser(offsetList))
    .option('--all', 'every dead letter not redriven yet')
    .option('--to <topic>', 'publish them to this topic instead')
    .option('--again', 'include dead letters that were redriven before')
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(
      async (
        topic: string,
        options: {
          partition: number;
          offsets?: number[];
          all?: boolean;
          to?: string;
          again?: boolean;
          json?: boolean;
          url: string;
        },
      ) => {
        if ((options.offsets === undefined) === !options.all)
          throw new InvalidArgumentError('say which dead letters: --offsets 3,7,9 or --all');
        const body = {
          partition: options.partition,
          again: options.again ?? false,
          ...(options.offsets === undefined ? {} : { offsets: options.offsets }),
          ...(options.to === undefined ? {} : { target: options.to }),
        };
        const result = (await call(options.url, `/v1/dlq/${encodeURIComponent(topic)}/redrive`, {
          method: 'POST',
          body: JSON.stringify(body),
        })) as {
          redriven: { offset: number; target: string; targetPartition: number; targetOffset: number }[];
        };
        if (options.json) print(JSON.stringify(result.redriven));
        else {
          for (const r of result.redriven)
            print(
              `${topic}[${options.partition}]@${r.offset} -> ${r.target}[${r.targetPartition}]@${r.targetOffset}`,
            );
          print(`redriven ${result.redriven.length}`);
        }
      },
    );
  return command;
}
