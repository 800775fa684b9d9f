/**
 * `eddy transforms set|get|list|remove`: WebAssembly transforms run on
 * publish, per topic, over the broker's HTTP API (docs/filters.md#on-topics).
 */
import { Command, Option } from 'commander';
import { urlOption } from './arguments.js';
import { addGetAndList, call } from './http-call.js';

const print = (line: string): void => void process.stdout.write(line + '\n');

interface TransformView {
  readonly topic: string;
  readonly transform: string | null;
  readonly onTrap?: string;
  readonly version?: number;
}

const path = (topic: string): string => `/v1/topics/${encodeURIComponent(topic)}/transform`;

function describe(view: TransformView): void {
  print(
    view.transform === null
      ? `${view.topic}  no transform`
      : `${view.topic}  transform=${view.transform}  onTrap=${view.onTrap}  version=${view.version}`,
  );
}

export function transformsCommand(): Command {
  const command = new Command('transforms').description(
    'WebAssembly transforms run on every publish to a topic: the topic stores their output',
  );
  command
    .command('set')
    .description('attach an uploaded transform to a topic, in place of any before it')
    .argument('<topic>', 'the topic')
    .argument('<transform>', 'name (its latest version, pinned now) or name@version')
    .addOption(
      new Option(
        '--on-trap <policy>',
        'when it fails on an event: refuse the batch, or store it without the event',
      )
        .choices(['reject', 'skip'])
        .default('reject'),
    )
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(
      async (topic: string, transform: string, options: { onTrap: string; json?: boolean; url: string }) => {
        const body = JSON.stringify({ transform, onTrap: options.onTrap });
        const view = (await call(options.url, path(topic), { method: 'PUT', body })) as TransformView & {
          created: boolean;
        };
        if (options.json) print(JSON.stringify(view));
        else
          print(
            `${view.created ? 'attached' : 'replaced'}: ${topic} runs ${view.transform} (onTrap ${view.onTrap})`,
          );
      },
    );
  addGetAndList(command, {
    argument: ['<topic>', 'the topic'],
    path,
    listPath: '/v1/transforms',
    listField: 'transforms',
    describe,
  });
  command
    .command('remove')
    .description("detach the topic's transform: publishes are stored as sent again")
    .argument('<topic>', 'the topic')
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(async (topic: string, options: { json?: boolean; url: string }) => {
      await call(options.url, path(topic), { method: 'DELETE' });
      if (options.json) print(JSON.stringify({ topic, transform: null }));
      else print(`removed the transform of ${topic}`);
    });
  return command;
}
