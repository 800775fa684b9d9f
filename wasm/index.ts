// The Eddy guest SDK for filters and transforms in AssemblyScript.
// docs/filters.md ("WASM filters") is the guide; a filter module looks like:
//
//   import { Event, filter, jsonNumber } from "../wasm";
//   export * from "../wasm/exports";
//   filter((event: Event): bool => jsonNumber(event.data, "amount") > 100);

export { ABI_VERSION, FilterFunction, TransformFunction, filter, transform } from './abi';
export { Bytes, ByteBuffer } from './bytes';
export { Event, Extension, ExtensionKind } from './event';
export { LogLevel, fail, log } from './host';
export {
  JsonArray,
  JsonKind,
  JsonValue,
  decodeJsonString,
  jsonArray,
  jsonBoolean,
  jsonFind,
  jsonFindIn,
  jsonHas,
  jsonNumber,
  jsonString,
  jsonStringEquals,
  parseJsonNumber,
} from './json';
export { EventBuilder, Output } from './output';
