/**
 * Checks an uploaded module against the ABI before anything of it runs: size,
 * `WebAssembly.validate`, compilation within a time limit, then what the
 * binary declares — every import must be one the host provides (with the
 * signature the host gives it), the exports the ABI needs must be there with
 * their types, and the memory must be capped. The JavaScript API says nothing
 * of signatures or memory limits, so this reads the type, import, function,
 * memory and export sections of the binary itself (WebAssembly core spec §5.5).
 */
import {
  EXPORT_MEMORY,
  IMPORTED_MEMORY,
  IMPORT_MODULE,
  entryPoints,
  formatSignature,
  importedFunctions,
  requiredExports,
  sameSignature,
  type FilterKind,
  type Signature,
} from './abi.js';
import { FilterError } from './errors.js';
import type { FilterLimits } from './limits.js';
import { WebAssemblyApi, type WasmModule } from './webassembly.js';

export interface ModuleMemory {
  /** Whether the host provides it (`broker_filter_v1.memory`) rather than the module defining it. */
  readonly imported: boolean;
  readonly minimumPages: number;
  /** The pages the memory may grow to: its declared maximum, or the cap for an imported one without. */
  readonly maximumPages: number;
}

export interface CheckedModule {
  readonly module: WasmModule;
  readonly kind: FilterKind;
  readonly memory: ModuleMemory;
  /** Host functions it imports (`abort`, `log`). */
  readonly importedFunctions: readonly string[];
  readonly moduleBytes: number;
}

const Section = { type: 1, import: 2, function: 3, memory: 5, export: 7 } as const;
const ExternalKind = { function: 0, table: 1, memory: 2, global: 3, tag: 4 } as const;
const kindNames = ['function', 'table', 'memory', 'global', 'tag'];

interface Limits {
  readonly minimum: number;
  readonly maximum: number | null;
  readonly shared: boolean;
  readonly index64: boolean;
}

interface Import {
  readonly module: string;
  readonly name: string;
  readonly kind: number;
  /** Type index of a function import. */
  readonly typeIndex: number;
  readonly limits: Limits | null;
}

interface Export {
  readonly name: string;
  readonly kind: number;
  readonly index: number;
}

interface ModuleLayout {
  readonly types: Signature[];
  readonly imports: Import[];
  /** Type index of each function the module defines. */
  readonly functions: number[];
  readonly memories: Limits[];
  readonly exports: Export[];
}

class Reader {
  readonly #bytes: Uint8Array;
  position: number;
  readonly #decoder = new TextDecoder('utf-8', { fatal: true });

  constructor(bytes: Uint8Array, position: number) {
    this.#bytes = bytes;
    this.position = position;
  }

  byte(): number {
    const value = this.#bytes[this.position];
    if (value === undefined) throw new RangeError('unexpected end of module');
    this.position++;
    return value;
  }

  /** An unsigned LEB128 number of at most 64 bits (as a float: exact below 2^53). */
  unsigned(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      const byte = this.byte();
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return value;
      scale *= 128;
    }
    throw new RangeError('LEB128 number longer than 10 bytes');
  }

  name(): string {
    const length = this.unsigned();
    const end = this.position + length;
    if (end > this.#bytes.length) throw new RangeError('name runs past the end of the module');
    const text = this.#decoder.decode(this.#bytes.subarray(this.position, end));
    this.position = end;
    return text;
  }

  limits(): Limits {
    const flags = this.byte();
    const minimum = this.unsigned();
    const maximum = (flags & 1) !== 0 ? this.unsigned() : null;
    return { minimum, maximum, shared: (flags & 2) !== 0, index64: (flags & 4) !== 0 };
  }

  valueTypes(): number[] {
    const count = this.unsigned();
    const types: number[] = [];
    for (let i = 0; i < count; i++) types.push(this.byte());
    return types;
  }
}

/** Reads the sections the checks need from a module that has passed `WebAssembly.validate`. */
function readLayout(bytes: Uint8Array): ModuleLayout {
  const layout: ModuleLayout = { types: [], imports: [], functions: [], memories: [], exports: [] };
  const reader = new Reader(bytes, 8); // after the magic number and version
  while (reader.position < bytes.length) {
    const id = reader.byte();
    const size = reader.unsigned();
    const end = reader.position + size;
    if (end > bytes.length) throw new RangeError('section runs past the end of the module');
    switch (id) {
      case Section.type:
        for (let count = reader.unsigned(), i = 0; i < count; i++) {
          const form = reader.byte();
          if (form !== 0x60)
            throw new RangeError(`type form 0x${form.toString(16)} (only plain function types are accepted)`);
          layout.types.push({ params: reader.valueTypes(), results: reader.valueTypes() });
        }
        break;
      case Section.import:
        for (let count = reader.unsigned(), i = 0; i < count; i++) {
          const module = reader.name();
          const name = reader.name();
          const kind = reader.byte();
          let typeIndex = -1;
          let limits: Limits | null = null;
          if (kind === ExternalKind.function) typeIndex = reader.unsigned();
          else if (kind === ExternalKind.table) {
            reader.byte(); // reference type
            reader.limits();
          } else if (kind === ExternalKind.memory) limits = reader.limits();
          else if (kind === ExternalKind.global) {
            reader.byte(); // value type
            reader.byte(); // mutability
          } else if (kind === ExternalKind.tag) {
            reader.byte(); // attribute
            reader.unsigned(); // type index
          } else throw new RangeError(`import of unknown kind ${kind}`);
          layout.imports.push({ module, name, kind, typeIndex, limits });
        }
        break;
      case Section.function:
        for (let count = reader.unsigned(), i = 0; i < count; i++) layout.functions.push(reader.unsigned());
        break;
      case Section.memory:
        for (let count = reader.unsigned(), i = 0; i < count; i++) layout.memories.push(reader.limits());
        break;
      case Section.export:
        for (let count = reader.unsigned(), i = 0; i < count; i++)
          layout.exports.push({ name: reader.name(), kind: reader.byte(), index: reader.unsigned() });
        break;
    }
    reader.position = end;
  }
  return layout;
}

function invalid(message: string): FilterError {
  return new FilterError('FILTER_INVALID_MODULE', message);
}

async function compileWithin(bytes: Uint8Array, timeoutMs: number): Promise<WasmModule> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(invalid(`the module took longer than ${timeoutMs} ms to compile`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([WebAssemblyApi.compile(bytes), timeout]);
  } catch (error) {
    if (error instanceof FilterError) throw error;
    throw invalid(`the module does not compile: ${(error as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

function checkImports(layout: ModuleLayout): string[] {
  const functions: string[] = [];
  for (const entry of layout.imports) {
    const what = `${entry.module}.${entry.name}`;
    const kind = kindNames[entry.kind] ?? 'unknown';
    const expected = entry.module === IMPORT_MODULE ? importedFunctions[entry.name] : undefined;
    const isMemory = entry.module === IMPORT_MODULE && entry.name === IMPORTED_MEMORY;
    if (expected === undefined && !isMemory)
      throw new FilterError(
        'FILTER_IMPORT_NOT_ALLOWED',
        `the module imports ${kind} ${what}; only ${IMPORT_MODULE}.{${Object.keys(importedFunctions).join(', ')}, ${IMPORTED_MEMORY}} are provided`,
      );
    if (isMemory) {
      if (entry.kind !== ExternalKind.memory)
        throw new FilterError(
          'FILTER_IMPORT_NOT_ALLOWED',
          `the module imports ${what} as a ${kind}, not a memory`,
        );
      continue;
    }
    const signature = entry.kind === ExternalKind.function ? layout.types[entry.typeIndex] : undefined;
    if (signature === undefined || expected === undefined || !sameSignature(signature, expected))
      throw new FilterError(
        'FILTER_IMPORT_NOT_ALLOWED',
        `the module imports ${what} as ${signature === undefined ? `a ${kind}` : formatSignature(signature)}; the host provides ${formatSignature(expected ?? { params: [], results: [] })}`,
      );
    functions.push(entry.name);
  }
  return functions;
}

function functionSignature(layout: ModuleLayout, index: number): Signature | undefined {
  const imported = layout.imports.filter((entry) => entry.kind === ExternalKind.function);
  const typeIndex =
    index < imported.length ? imported[index]?.typeIndex : layout.functions[index - imported.length];
  return typeIndex === undefined ? undefined : layout.types[typeIndex];
}

function checkExports(layout: ModuleLayout, kind: FilterKind, memoryImported: boolean): void {
  const wanted: [string, Signature][] = [
    ...Object.entries(requiredExports),
    [entryPoints[kind].name, entryPoints[kind].signature],
  ];
  for (const [name, signature] of wanted) {
    const entry = layout.exports.find((candidate) => candidate.name === name);
    if (entry === undefined)
      throw new FilterError(
        'FILTER_EXPORT_MISSING',
        `the module does not export ${name} (a ${kind} needs it)`,
      );
    const actual = entry.kind === ExternalKind.function ? functionSignature(layout, entry.index) : undefined;
    if (actual === undefined || !sameSignature(actual, signature))
      throw new FilterError(
        'FILTER_EXPORT_MISSING',
        `export ${name} is ${actual === undefined ? `a ${kindNames[entry.kind] ?? 'unknown'}` : formatSignature(actual)}, the ABI needs a function ${formatSignature(signature)}`,
      );
  }
  if (memoryImported) return;
  const memory = layout.exports.find((candidate) => candidate.name === EXPORT_MEMORY);
  if (memory === undefined || memory.kind !== ExternalKind.memory)
    throw new FilterError(
      'FILTER_EXPORT_MISSING',
      `the module neither exports its memory as "${EXPORT_MEMORY}" nor imports ${IMPORT_MODULE}.${IMPORTED_MEMORY}`,
    );
}

function checkMemory(layout: ModuleLayout, memoryPagesMax: number): ModuleMemory {
  const imported = layout.imports.filter((entry) => entry.kind === ExternalKind.memory);
  const all = [...imported.map((entry) => entry.limits as Limits), ...layout.memories];
  if (all.length !== 1)
    throw new FilterError(
      'FILTER_MEMORY_UNBOUNDED',
      `the module has ${all.length} memories; the ABI needs exactly one`,
    );
  const limits = all[0] as Limits;
  if (limits.shared || limits.index64)
    throw new FilterError(
      'FILTER_MEMORY_UNBOUNDED',
      'the module memory is shared or 64-bit; filters get one private 32-bit memory',
    );
  if (limits.minimum > memoryPagesMax)
    throw new FilterError(
      'FILTER_MEMORY_UNBOUNDED',
      `the module memory starts at ${limits.minimum} pages, above the cap of ${memoryPagesMax}`,
    );
  if (imported.length === 1)
    // The host creates it capped: at the module's own maximum when that is lower.
    return {
      imported: true,
      minimumPages: limits.minimum,
      maximumPages: Math.min(limits.maximum ?? memoryPagesMax, memoryPagesMax),
    };
  if (limits.maximum === null)
    throw new FilterError(
      'FILTER_MEMORY_UNBOUNDED',
      `the module memory declares no maximum; declare one of at most ${memoryPagesMax} pages (asc --maximumMemory) or import ${IMPORT_MODULE}.${IMPORTED_MEMORY}`,
    );
  if (limits.maximum > memoryPagesMax)
    throw new FilterError(
      'FILTER_MEMORY_UNBOUNDED',
      `the module memory may grow to ${limits.maximum} pages, above the cap of ${memoryPagesMax}`,
    );
  return { imported: false, minimumPages: limits.minimum, maximumPages: limits.maximum };
}

/** Checks and compiles `bytes` as a module of `kind`; throws a FilterError naming the first problem. */
export async function checkModule(
  bytes: Uint8Array,
  kind: FilterKind,
  limits: FilterLimits,
): Promise<CheckedModule> {
  if (bytes.length > limits.moduleBytesMax)
    throw invalid(`the module is ${bytes.length} bytes, above the limit of ${limits.moduleBytesMax}`);
  if (!WebAssemblyApi.validate(bytes)) throw invalid('the bytes are not a valid WebAssembly module');
  const module = await compileWithin(bytes, limits.compileTimeoutMs);
  let layout: ModuleLayout;
  try {
    layout = readLayout(bytes);
  } catch (error) {
    throw invalid(`the module cannot be read: ${(error as Error).message}`);
  }
  const functions = checkImports(layout);
  const memory = checkMemory(layout, limits.memoryPagesMax);
  checkExports(layout, kind, memory.imported);
  return { module, kind, memory, importedFunctions: functions, moduleBytes: bytes.length };
}
