// The entry points of ABI version 1. A filter or transform module re-exports
// them from its entry file:
//
//   export * from "../wasm/exports";
//
// The host requires eddy_abi_version, eddy_input, memory, and eddy_filter or
// eddy_transform (whichever kind it loads the module as).

import { ABI_VERSION, inputBuffer, runFilter, runTransform } from './abi';

/** The ABI version this module was built against. */
export function eddy_abi_version(): i32 {
  return ABI_VERSION;
}

/** Where the host may write `length` bytes of event block; 0 if there is no room. */
export function eddy_input(length: i32): usize {
  return inputBuffer(length);
}

/** Filters events [first, end) of the block at `block` (`length` bytes); returns the keep bitmap's address. */
export function eddy_filter(block: usize, length: i32, first: i32, end: i32): usize {
  return length < 8 ? 0 : runFilter(block, first, end);
}

/** Transforms events [first, end) of the block; returns the address of (u32 address, u32 length) of the output block. */
export function eddy_transform(block: usize, length: i32, first: i32, end: i32): usize {
  return length < 8 ? 0 : runTransform(block, first, end);
}
