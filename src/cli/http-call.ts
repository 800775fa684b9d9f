/** Calls to the broker's HTTP API for the commands that use it (filters, dead letters, routing, transforms). */
import type { Command } from 'commander';
import { urlOption } from './arguments.js';

/** The broker's HTTP base, whether given as http(s) or as its WebSocket endpoint. */
function httpBase(url: string): string {
  const parsed = new URL(url);
  parsed.protocol =
    parsed.protocol === 'wss:' ? 'https:' : parsed.protocol === 'ws:' ? 'http:' : parsed.protocol;
  return parsed.origin;
}

/** Calls the API; a problem+json answer becomes an Error with its code and detail. */
export async function call(url: string, pathAndQuery: string, init: RequestInit = {}): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(`${httpBase(url)}${pathAndQuery}`, init);
  } catch (error) {
    throw new Error(`cannot reach the broker at ${url}: ${(error as Error).message}`, { cause: error });
  }
  const body = (await response.json().catch(() => null)) as { code?: string; detail?: string } | null;
  if (!response.ok)
    throw new Error(`${body?.code ?? response.status}: ${body?.detail ?? response.statusText}`);
  return body;
}

/** A resource of the HTTP API that `eddy <command> get <name>` and `eddy <command> list` show. */
export interface ShownResource<View> {
  /** The `<name>` argument and its description. */
  readonly argument: readonly [string, string];
  readonly path: (name: string) => string;
  /** Where the list is, and the field of the answer holding it. */
  readonly listPath: string;
  readonly listField: string;
  /** Prints one, as the commands do without `--json`. */
  readonly describe: (view: View) => void;
}

/** Adds `get <name>` and `list` to `command`; `--json` prints the API's answer as it is. */
export function addGetAndList<View>(command: Command, resource: ShownResource<View>): void {
  const print = (line: string): void => void process.stdout.write(line + '\n');
  command
    .command('get')
    .argument(...resource.argument)
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(async (name: string, options: { json?: boolean; url: string }) => {
      const view = (await call(options.url, resource.path(name))) as View;
      if (options.json) print(JSON.stringify(view));
      else resource.describe(view);
    });
  command
    .command('list')
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(async (options: { json?: boolean; url: string }) => {
      const listed =
        ((await call(options.url, resource.listPath)) as Record<string, View[]>)[resource.listField] ?? [];
      if (options.json) print(JSON.stringify(listed));
      else for (const view of listed) resource.describe(view);
    });
}
