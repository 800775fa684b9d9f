// The guest side of ABI version 1 (docs/filters.md, "The ABI"): a filter or
// transform registers its per-event function at the top level of its module
// (which runs when the host instantiates it), and the entry points in
// exports.ts run that function over a range of events of the block the host
// copied in. The host decides nothing from guest memory without checking it:
// every address returned here is bounds-checked on the other side.

import { Event, blockEventCount, blockEvents, eventAt } from './event';
import { fail } from './host';
import { Output, beginOutput, finishOutput, output } from './output';

export const ABI_VERSION: i32 = 1;

/** Decides for one event: true keeps it. */
export type FilterFunction = (event: Event) => bool;
/** Emits what should replace one event into `out`: nothing (drop it), one event, or several. */
export type TransformFunction = (event: Event, out: Output) => void;

let filterFunction: FilterFunction | null = null;
let transformFunction: TransformFunction | null = null;

/** Registers the module's filter; call it once, at the top level. */
export function filter(decide: FilterFunction): void {
  filterFunction = decide;
}

/** Registers the module's transform; call it once, at the top level. */
export function transform(replace: TransformFunction): void {
  transformFunction = replace;
}

let input: usize = 0;
let inputCapacity: usize = 0;

/** Room for the host to copy a block of `length` bytes into (kept between calls). */
export function inputBuffer(length: i32): usize {
  if (length < 0) fail('eddy_input: negative length');
  if (<usize>length > inputCapacity) {
    if (input != 0) heap.free(input);
    inputCapacity = max<usize>(<usize>length, 4096);
    input = heap.alloc(inputCapacity);
  }
  return input;
}

let bitmap: usize = 0;
let bitmapCapacity: usize = 0;

function checkRange(block: usize, first: i32, end: i32): void {
  if (first < 0 || end < first || end > blockEventCount(block)) fail('event range outside the block');
}

/**
 * Runs the filter over events [first, end) of the block; returns the address
 * of a bitmap of end - first bits, bit k (byte k / 8, bit k % 8 from the least
 * significant) set when event first + k is kept.
 */
export function runFilter(block: usize, first: i32, end: i32): usize {
  // The minimal runtime collects only when told; no managed local is live here.
  // @ts-expect-error: a runtime builtin, which the editor typings do not declare
  __collect();
  const decide = filterFunction;
  if (decide === null) {
    fail('this module registered no filter: call filter(fn) at its top level');
    return 0;
  }
  checkRange(block, first, end);
  const bytes = <usize>((end - first + 7) >> 3);
  if (bytes > bitmapCapacity) {
    if (bitmap != 0) heap.free(bitmap);
    bitmapCapacity = max<usize>(bytes, 256);
    bitmap = heap.alloc(bitmapCapacity);
  }
  const events = blockEvents(block);
  let bits: u32 = 0;
  let k = 0;
  for (let i = first; i < end; i++, k++) {
    if (decide(eventAt(events, i))) bits |= 1 << (k & 7);
    if ((k & 7) == 7) {
      store<u8>(bitmap + ((<usize>k) >> 3), <u8>bits);
      bits = 0;
    }
  }
  if ((k & 7) != 0) store<u8>(bitmap + ((<usize>k) >> 3), <u8>bits);
  return bitmap;
}

/**
 * Runs the transform over events [first, end) of the block; returns the
 * address of an 8-byte record: u32 address and u32 length of the output block.
 */
export function runTransform(block: usize, first: i32, end: i32): usize {
  // @ts-expect-error: a runtime builtin, which the editor typings do not declare
  __collect();
  const replace = transformFunction;
  if (replace === null) {
    fail('this module registered no transform: call transform(fn) at its top level');
    return 0;
  }
  checkRange(block, first, end);
  beginOutput(end - first);
  const events = blockEvents(block);
  for (let i = first; i < end; i++) replace(eventAt(events, i), output);
  return finishOutput();
}
