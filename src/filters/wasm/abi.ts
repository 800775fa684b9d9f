/**
 * The host side of the filter ABI, version 1 (docs/filters.md, "The ABI").
 * The version is in the import module's name, so a guest built for another
 * version imports a module the host does not provide and fails at load.
 *
 * Imports (all optional):
 *   broker_filter_v1.abort(message: i32, length: i32) -> ()         trap with a UTF-8 reason
 *   broker_filter_v1.log(level: i32, message: i32, length: i32) -> ()
 *   broker_filter_v1.memory                                          memory the host creates, capped
 * Exports:
 *   memory                       (unless imported)
 *   eddy_abi_version() -> i32    must return 1
 *   eddy_input(length: i32) -> i32                                   where the host writes the block
 *   eddy_filter(block: i32, length: i32, first: i32, end: i32) -> i32     keep bitmap address
 *   eddy_transform(block: i32, length: i32, first: i32, end: i32) -> i32  (u32 address, u32 length) record
 */

import type { WasmMemory } from './webassembly.js';

export const ABI_VERSION = 1;
export const IMPORT_MODULE = 'broker_filter_v1';

export const filterKinds = ['filter', 'transform'] as const;
export type FilterKind = (typeof filterKinds)[number];

/** A function type as the binary format gives it: value type codes (0x7f i32, 0x7e i64, 0x7d f32, 0x7c f64). */
export interface Signature {
  readonly params: readonly number[];
  readonly results: readonly number[];
}

const I32 = 0x7f;

export const importedFunctions: Readonly<Record<string, Signature>> = {
  abort: { params: [I32, I32], results: [] },
  log: { params: [I32, I32, I32], results: [] },
};
export const IMPORTED_MEMORY = 'memory';

export const EXPORT_MEMORY = 'memory';
export const requiredExports: Readonly<Record<string, Signature>> = {
  eddy_abi_version: { params: [], results: [I32] },
  eddy_input: { params: [I32], results: [I32] },
};
export const entryPoints: Readonly<Record<FilterKind, { name: string; signature: Signature }>> = {
  filter: { name: 'eddy_filter', signature: { params: [I32, I32, I32, I32], results: [I32] } },
  transform: { name: 'eddy_transform', signature: { params: [I32, I32, I32, I32], results: [I32] } },
};

/** The guest's exports, once checked against the ABI. */
export interface GuestExports {
  readonly memory: WasmMemory;
  readonly eddy_abi_version: () => number;
  readonly eddy_input: (length: number) => number;
  readonly run: (block: number, length: number, first: number, end: number) => number;
}

const typeNames: Readonly<Record<number, string>> = {
  0x7f: 'i32',
  0x7e: 'i64',
  0x7d: 'f32',
  0x7c: 'f64',
  0x7b: 'v128',
  0x70: 'funcref',
  0x6f: 'externref',
};

export function formatSignature(signature: Signature): string {
  const names = (types: readonly number[]): string =>
    types.map((type) => typeNames[type] ?? `0x${type.toString(16)}`).join(', ');
  return `(${names(signature.params)}) -> (${names(signature.results)})`;
}

export function sameSignature(a: Signature, b: Signature): boolean {
  return (
    a.params.length === b.params.length &&
    a.results.length === b.results.length &&
    a.params.every((type, i) => type === b.params[i]) &&
    a.results.every((type, i) => type === b.results[i])
  );
}
