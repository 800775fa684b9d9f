// PII-masking transform: replaces the "email" string of JSON event data with
// a masked form that keeps the first character and the domain
// ("alice@example.com" becomes "a***@example.com"), and marks the event with
// the extension `piimasked: true`. Events without such a field pass unchanged.

import { ByteBuffer, Event, JsonKind, JsonValue, Output, jsonFind, transform } from '../wasm';
export * from '../wasm/exports';

const FIELD = 'email';
const MASK = '***';

// One buffer for every event: emit() copies its content.
const masked = new ByteBuffer(512);

transform((event: Event, out: Output): void => {
  const data = event.data;
  if (data === null || !jsonFind(data, FIELD) || JsonValue.kind != JsonKind.String) {
    out.keep(event);
    return;
  }
  // The string's content, without its quotes.
  const start = JsonValue.start + 1;
  const end = JsonValue.end - 1;
  let at = start;
  while (at < end && load<u8>(at) != 0x40) at++; // "@"
  masked.reset().appendRange(data.dataStart, <i32>(start - data.dataStart));
  if (at < end && at > start) {
    masked
      .appendRange(start, 1)
      .appendString(MASK)
      .appendRange(at, <i32>(end - at));
  } else {
    masked.appendString(MASK);
  }
  masked.appendRange(end, <i32>(data.dataEnd - end));
  out.from(event).setDataBuffer(masked).setExtensionBoolean('piimasked', true).emit();
});
