// Builds the example WebAssembly filters: every filters/*.ts (AssemblyScript,
// using the guest SDK in wasm/) becomes dist/filters/<name>.wasm.
//
//   node scripts/build-wasm.mjs [--force] [--out-dir DIR] [--max-memory-pages N] [FILE.ts ...]
//
// A module is rebuilt only when its source, the SDK, or this script is newer
// than it (--force rebuilds anyway). Needs the `assemblyscript` package at the
// version pinned in package.json (asc output differs between versions).
//
// Other tools compile user filters the same way through `buildFilter` and
// `ascArguments` (exported below), so every module gets the flags the host
// expects: the minimal runtime (the SDK collects garbage between calls),
// AssemblyScript's `abort` redirected to the SDK's handler (which reports
// through `broker_filter_v1.abort`, the only abort the host provides), and a
// declared memory maximum.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const sdkDir = path.join(root, 'wasm');
const filtersDir = path.join(root, 'filters');
const defaultOutDir = path.join(root, 'dist', 'filters');

/** 16 MiB: the host's default memory cap (src/filters/wasm/limits.ts). */
export const DEFAULT_MAX_MEMORY_PAGES = 256;

/** AssemblyScript names files by their path from the working directory, without `.ts`. */
function internalPath(file) {
  return path.relative(process.cwd(), file).replace(/\.ts$/, '').split(path.sep).join('/');
}

/** The asc command-line arguments that build `entry` into `outFile`. */
export function ascArguments(entry, outFile, { maxMemoryPages = DEFAULT_MAX_MEMORY_PAGES } = {}) {
  return [
    path.relative(process.cwd(), entry),
    '--outFile',
    path.relative(process.cwd(), outFile),
    '--optimizeLevel',
    '3',
    '--shrinkLevel',
    '0',
    '--converge',
    '--runtime',
    'minimal',
    '--use',
    `abort=${internalPath(path.join(sdkDir, 'host.ts'))}/eddyAbort`,
    '--maximumMemory',
    String(maxMemoryPages),
    '--noColors',
  ];
}

/** Compiles one AssemblyScript filter; throws with the compiler's output on failure. */
export async function buildFilter(entry, outFile, options = {}) {
  const { default: asc } = await import('assemblyscript/asc').catch(() => {
    throw new Error('the assemblyscript package is missing: npm install builds it (a devDependency)');
  });
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  let output = '';
  const stream = { write: (chunk) => ((output += String(chunk)), true) };
  // Written aside, then renamed: a reader (another build, a test) never sees half a module.
  const partial = `${outFile}.${process.pid}.partial`;
  const { error } = await asc.main(ascArguments(entry, partial, options), { stdout: stream, stderr: stream });
  if (error) {
    fs.rmSync(partial, { force: true });
    throw new Error(`asc failed for ${path.relative(root, entry)}: ${error.message}\n${output}`);
  }
  fs.renameSync(partial, outFile);
}

function newestSource() {
  const sources = [fileURLToPath(import.meta.url)];
  for (const name of fs.readdirSync(sdkDir)) if (name.endsWith('.ts')) sources.push(path.join(sdkDir, name));
  return Math.max(...sources.map((file) => fs.statSync(file).mtimeMs));
}

function parseArguments(argv) {
  const options = {
    force: false,
    outDir: defaultOutDir,
    maxMemoryPages: DEFAULT_MAX_MEMORY_PAGES,
    files: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const argument = argv[i];
    if (argument === '--force') options.force = true;
    else if (argument === '--out-dir') options.outDir = path.resolve(argv[++i] ?? '');
    else if (argument === '--max-memory-pages') options.maxMemoryPages = Number(argv[++i]);
    else if (argument.startsWith('--')) throw new Error(`unknown option ${argument}`);
    else options.files.push(path.resolve(argument));
  }
  if (
    !Number.isSafeInteger(options.maxMemoryPages) ||
    options.maxMemoryPages < 1 ||
    options.maxMemoryPages > 65536
  )
    throw new Error('--max-memory-pages takes a number of 64 KiB pages, 1 to 65536');
  if (options.files.length === 0)
    options.files = fs
      .readdirSync(filtersDir)
      .filter((name) => name.endsWith('.ts'))
      .sort()
      .map((name) => path.join(filtersDir, name));
  return options;
}

async function main() {
  const options = parseArguments(process.argv.slice(2));
  const sdkTime = newestSource();
  let built = 0;
  for (const entry of options.files) {
    const outFile = path.join(options.outDir, `${path.basename(entry, '.ts')}.wasm`);
    const upToDate =
      !options.force &&
      fs.existsSync(outFile) &&
      fs.statSync(outFile).mtimeMs >= Math.max(sdkTime, fs.statSync(entry).mtimeMs);
    if (upToDate) continue;
    await buildFilter(entry, outFile, { maxMemoryPages: options.maxMemoryPages });
    built++;
    process.stdout.write(`built ${path.relative(root, outFile)} (${fs.statSync(outFile).size} bytes)\n`);
  }
  if (built === 0) process.stdout.write(`filters up to date in ${path.relative(root, options.outDir)}\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((error) => {
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  });
}
