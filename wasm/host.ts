// Talking to the host: failing a call with a reason, logging a line. Both
// format their text into one static buffer, so they work even when the heap
// is exhausted (the usual reason to abort).
//
// Filters are compiled with `--use abort=<this file>/eddyAbort`
// (scripts/build-wasm.mjs does it), so that AssemblyScript's own failures
// (assertions, index out of range, `throw`) also reach the host through
// `broker_filter_v1.abort` rather than an `env.abort` import the host refuses.

import * as host from './broker_filter_v1';

const TEXT_BYTES_MAX: usize = 1024;
const text: usize = memory.data(<i32>TEXT_BYTES_MAX, 4);
let textLength: usize = 0;

function putByte(value: u32): void {
  if (textLength < TEXT_BYTES_MAX) store<u8>(text + textLength++, <u8>value);
}

/** Appends a string as UTF-8 (characters outside the BMP as "?"), cut at the buffer's end. */
function putString(value: string | null): void {
  if (value === null) return;
  const units = changetype<usize>(value);
  const count = <usize>value.length;
  for (let i: usize = 0; i < count; i++) {
    const c = <u32>load<u16>(units + (i << 1));
    if (c < 0x80) putByte(c);
    else if (c < 0x800) {
      putByte(0xc0 | (c >> 6));
      putByte(0x80 | (c & 0x3f));
    } else if ((c & 0xf800) == 0xd800) putByte(0x3f);
    else {
      putByte(0xe0 | (c >> 12));
      putByte(0x80 | ((c >> 6) & 0x3f));
      putByte(0x80 | (c & 0x3f));
    }
  }
}

function putNumber(value: u32): void {
  let divisor: u32 = 1;
  while (value / divisor >= 10) divisor *= 10;
  for (; divisor > 0; divisor /= 10) putByte(0x30 + ((value / divisor) % 10));
}

/** AssemblyScript's `abort`, redirected here by `--use abort=`: tells the host why, then traps. */
export function eddyAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  textLength = 0;
  putString(message === null ? 'abort' : message);
  if (fileName !== null) {
    putString(' (');
    putString(fileName);
    putByte(0x3a);
    putNumber(line);
    putByte(0x3a);
    putNumber(column);
    putByte(0x29);
  }
  host.abort(text, textLength);
  unreachable();
}

/** Fails the current call with `reason`: the host reports a trap carrying it. Never returns. */
export function fail(reason: string): void {
  textLength = 0;
  putString(reason);
  host.abort(text, textLength);
  unreachable();
}

/** Log levels for `log`. */
export namespace LogLevel {
  export const Debug: i32 = 0;
  export const Info: i32 = 1;
  export const Warn: i32 = 2;
  export const Error: i32 = 3;
}

/** Sends a line to the broker's log (the host keeps a few per call and cuts long ones). */
export function log(message: string, level: i32 = LogLevel.Info): void {
  textLength = 0;
  putString(message);
  host.log(level, text, textLength);
}
