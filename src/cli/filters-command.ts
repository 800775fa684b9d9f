/**
 * `eddy filters deploy|list|describe|delete`: the broker's WASM filter
 * registry over its HTTP API (`/v1/filters`). `deploy` takes a `.wasm` module,
 * or an AssemblyScript `.ts` file that it compiles first with the same flags
 * as the example filters (scripts/build-wasm.mjs; needs the assemblyscript package).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { positiveInteger, urlOption } from './arguments.js';
import { call } from './http-call.js';

const print = (line: string): void => void process.stdout.write(line + '\n');

/** The module to upload: a .wasm file as it is, or a .ts file compiled with asc. */
async function moduleBytes(file: string): Promise<Uint8Array> {
  if (file.endsWith('.wasm')) return fs.readFileSync(file);
  if (!file.endsWith('.ts'))
    throw new InvalidArgumentError(`expected a .wasm or an AssemblyScript .ts file, got ${file}`);
  // The build script lives beside the package's sources: from dist/src/cli, three levels up.
  const script = new URL('../../../scripts/build-wasm.mjs', import.meta.url);
  const { buildFilter } = (await import(script.href)) as {
    buildFilter: (entry: string, outFile: string) => Promise<void>;
  };
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'eddy-filter-'));
  try {
    const out = path.join(outDir, `${path.basename(file, '.ts')}.wasm`);
    await buildFilter(path.resolve(file), out);
    return fs.readFileSync(out);
  } finally {
    fs.rmSync(outDir, { recursive: true, force: true });
  }
}

interface Described {
  readonly ref: string;
  readonly kind: string;
  readonly sizeBytes: number;
  readonly sha256: string;
  readonly createdAt: string;
}

const line = (filter: Described): string =>
  `${filter.ref}  ${filter.kind}  ${filter.sizeBytes} bytes  sha256:${filter.sha256.slice(0, 12)}  ${filter.createdAt}`;

export function filtersCommand(): Command {
  const filters = new Command('filters').description(
    "manage the broker's WebAssembly filters and transforms",
  );
  filters
    .command('deploy')
    .description('upload a filter (.wasm, or AssemblyScript .ts compiled here) as the next version of --name')
    .argument('<file>', 'a .wasm module or an AssemblyScript .ts file')
    .requiredOption('--name <name>', 'filter name')
    .addOption(
      new Option('--kind <kind>', 'filter (keep/drop) or transform')
        .choices(['filter', 'transform'])
        .default('filter'),
    )
    .addOption(
      new Option('--version <n>', 'an explicit version (above every earlier one)').argParser(positiveInteger),
    )
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(
      async (
        file: string,
        options: { name: string; kind: string; version?: number; json?: boolean; url: string },
      ) => {
        const bytes = await moduleBytes(file);
        const query = `kind=${options.kind}${options.version === undefined ? '' : `&version=${options.version}`}`;
        const stored = (await call(options.url, `/v1/filters/${encodeURIComponent(options.name)}?${query}`, {
          method: 'PUT',
          body: bytes,
        })) as Described & { created: boolean };
        print(
          options.json
            ? JSON.stringify(stored)
            : `${stored.created ? 'deployed' : 'unchanged'} ${line(stored)}`,
        );
      },
    );
  filters
    .command('list')
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(async (options: { json?: boolean; url: string }) => {
      const { filters: names } = (await call(options.url, '/v1/filters')) as {
        filters: { name: string; latestVersion: number; versions: Described[] }[];
      };
      if (options.json) print(JSON.stringify(names));
      else for (const name of names) for (const version of name.versions) print(line(version));
    });
  filters
    .command('describe')
    .argument('<ref>', 'name (the latest version) or name@version')
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(async (ref: string, options: { json?: boolean; url: string }) => {
      const filter = (await call(options.url, `/v1/filters/${encodeURIComponent(ref)}`)) as Described;
      print(options.json ? JSON.stringify(filter) : line(filter));
    });
  filters
    .command('delete')
    .argument('<ref>', 'name@version, or a name for every version')
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(async (ref: string, options: { json?: boolean; url: string }) => {
      const { deleted } = (await call(options.url, `/v1/filters/${encodeURIComponent(ref)}`, {
        method: 'DELETE',
      })) as { deleted: Described[] };
      print(
        options.json ? JSON.stringify(deleted) : deleted.map((filter) => `deleted ${filter.ref}`).join('\n'),
      );
    });
  return filters;
}
