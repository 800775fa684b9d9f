/**
 * The bitmap a filter verdict travels as (`Deliver.kept`, a filter's outcome):
 * bit i, least significant first within each byte, is set when event i of a
 * batch is kept.
 */

/** Whether event `index` is kept according to `kept`. */
export function isKept(kept: Uint8Array, index: number): boolean {
  return (((kept[index >> 3] ?? 0) >> (index & 7)) & 1) === 1;
}

/** How many events `kept` keeps. */
export function keptCount(kept: Uint8Array): number {
  let count = 0;
  for (const byte of kept) for (let bits = byte; bits !== 0; bits &= bits - 1) count++;
  return count;
}
