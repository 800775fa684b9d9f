/**
 * `eddy routing set|get|list|delete|test`: routing rule sets over the
 * broker's HTTP API (`/v1/routing`, docs/filters.md#routing-rules).
 */
import fs from 'node:fs';
import { Command } from 'commander';
import { urlOption } from './arguments.js';
import { addGetAndList, call } from './http-call.js';

const print = (line: string): void => void process.stdout.write(line + '\n');

interface RuleSetView {
  readonly id: string;
  readonly source: string;
  readonly version: number;
  readonly rules: {
    name: string;
    priority: number;
    when: string | null;
    to: string[];
    transform: string | null;
    stop: boolean;
  }[];
}

interface DryRun {
  readonly matched: { name: string; priority: number; to: string[]; stop: boolean }[];
  readonly skipped: string[];
  readonly to: string[];
  readonly errors: { rule: string; error: string }[];
  readonly missingTopics: string[];
}

const path = (id: string): string => `/v1/routing/${encodeURIComponent(id)}`;

function readFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
}

function describe(view: RuleSetView): void {
  print(`${view.id}  source=${view.source}  version=${view.version}  rules=${view.rules.length}`);
  for (const r of view.rules)
    print(
      `  ${r.name}  priority=${r.priority}  to=${r.to.join(',')}${r.transform === null ? '' : `  transform=${r.transform}`}${r.stop ? '  stop' : ''}${r.when === null ? '' : `  when=${r.when}`}`,
    );
}

export function routingCommand(): Command {
  const command = new Command('routing').description(
    'routing rules: copy matching events of a topic (or topic pattern) to other topics',
  );
  command
    .command('set')
    .description('create or replace a rule set from a JSON file: {"source": "orders.*", "rules": [...]}')
    .argument('<id>', 'the rule set id')
    .requiredOption('--file <path>', 'the rule set, as JSON')
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(async (id: string, options: { file: string; json?: boolean; url: string }) => {
      const body = readFile(options.file);
      const view = (await call(options.url, path(id), { method: 'PUT', body })) as RuleSetView & {
        created: boolean;
      };
      if (options.json) print(JSON.stringify(view));
      else print(`${view.created ? 'created' : 'replaced'} ${view.id} version ${view.version}`);
    });
  addGetAndList(command, {
    argument: ['<id>', 'the rule set id'],
    path,
    listPath: '/v1/routing',
    listField: 'ruleSets',
    describe,
  });
  command
    .command('delete')
    .argument('<id>', 'the rule set id')
    .addOption(urlOption())
    .action(async (id: string, options: { url: string }) => {
      await call(options.url, path(id), { method: 'DELETE' });
      print(`deleted ${id}`);
    });
  command
    .command('test')
    .description(
      'dry-run: which rules of a set an event (structured JSON) would match, and where it would go',
    )
    .argument('<id>', 'the rule set id')
    .requiredOption('--event <path>', 'one CloudEvent in structured-mode JSON')
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(async (id: string, options: { event: string; json?: boolean; url: string }) => {
      const body = readFile(options.event);
      const result = (await call(options.url, `${path(id)}/dry-run`, { method: 'POST', body })) as DryRun;
      if (options.json) {
        print(JSON.stringify(result));
        return;
      }
      for (const m of result.matched)
        print(`matched ${m.name}  priority=${m.priority}  to=${m.to.join(',')}${m.stop ? '  stop' : ''}`);
      for (const name of result.skipped) print(`skipped ${name} (after a stop)`);
      for (const e of result.errors) print(`error ${e.rule}: ${e.error}`);
      print(result.to.length === 0 ? 'routed nowhere' : `routed to ${result.to.join(', ')}`);
      if (result.missingTopics.length > 0)
        print(`missing topics (a publish would be refused): ${result.missingTopics.join(', ')}`);
    });
  return command;
}
