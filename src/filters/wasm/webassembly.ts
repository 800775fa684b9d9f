/**
 * The part of the JavaScript WebAssembly API the host uses, typed here: the
 * project compiles against lib ES2022 and @types/node 20, neither of which
 * declares the `WebAssembly` global (lib.dom does, and it must stay out of a
 * server build). Replace with the global types once @types/node has them.
 */

/** A compiled module: opaque to the host, and cloneable to a worker thread. */
export interface WasmModule {
  readonly __brand?: 'WebAssembly.Module';
}

export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(deltaPages: number): number;
}

export type WasmImportValue = ((...args: number[]) => unknown) | WasmMemory;
export type WasmImports = Record<string, Record<string, WasmImportValue>>;

export interface WasmInstance {
  readonly exports: Record<string, unknown>;
}

interface WebAssemblyApi {
  validate(bytes: Uint8Array): boolean;
  compile(bytes: Uint8Array): Promise<WasmModule>;
  readonly Instance: new (module: WasmModule, imports: WasmImports) => WasmInstance;
  readonly Memory: new (descriptor: { initial: number; maximum?: number }) => WasmMemory;
  readonly RuntimeError: new (message?: string) => Error;
}

export const WebAssemblyApi = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;
