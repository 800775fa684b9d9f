/**
 * Eddy's extension to CESQL: `data.<path>` reads a value inside the event's
 * data when the data is JSON (docs/filters.md#reading-event-data-in-cesql).
 *
 *   data path   data.segment(.segment)*   segment [A-Za-z0-9_]+, case-sensitive
 *
 * A segment names an object member by its key; over an array, a segment of
 * digits (no leading zero) is an index. The value there maps to CESQL as an
 * attribute value does: a string is a String, a boolean a Boolean, an integer
 * in 32 bits an Integer, any other number its String form; null, an object,
 * an array or nothing at all is a missing attribute.
 *
 * To the compiled expression a data path is an attribute name like any other:
 * the reader is asked for `data.items.0.sku` and returns the value there. This
 * file has what every reader needs for that: the content-type rule, the data
 * as a JSON value, the walk, and the reader of plain-object events.
 */
import { dataPathPrefix, isDataPath, readOwnProperty } from './attributes.js';

/**
 * Whether data of this `datacontenttype` is JSON: absent, `application/json`,
 * or a `type/subtype+json` media type; parameters (`; charset=utf-8`) and case
 * do not matter.
 */
export function isJsonContentType(contentType: unknown): boolean {
  if (contentType === undefined || contentType === null) return true;
  if (typeof contentType !== 'string') return false;
  const semicolon = contentType.indexOf(';');
  const mediaType = (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
  return mediaType === 'application/json' || jsonSuffixType.test(mediaType);
}

/** RFC 6838 restricted names on both sides of the slash; the subtype ends in `+json`. */
const jsonSuffixType = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*\+json$/;

/** Rejects bytes that are not UTF-8, instead of reading them as U+FFFD: such data is not JSON. */
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The event's data as a JSON value, or `undefined` when it cannot be read as
 * JSON: no data, a content type that is not JSON (see isJsonContentType), text
 * or bytes that do not parse. `data` is what the event holds: JSON text, its
 * UTF-8 bytes, or a value already parsed (an object, an array, …).
 */
export function eventDataJson(data: unknown, contentType: unknown): unknown {
  if (data === undefined || data === null || !isJsonContentType(contentType)) return undefined;
  if (typeof data === 'string') return parseJson(data);
  if (data instanceof Uint8Array) {
    let text: string;
    try {
      text = utf8.decode(data);
    } catch {
      return undefined;
    }
    return parseJson(text);
  }
  return data;
}

/** Texts `eventDataJson` has parsed in this process (see `dataParseCount`). */
let parses = 0;

/**
 * How many times `eventDataJson` has run `JSON.parse` since the process
 * started: what reading data paths costs, counted where it is paid, so that
 * tests and measurements can check that each event's data is parsed once.
 */
export function dataParseCount(): number {
  return parses;
}

function parseJson(text: string): unknown {
  parses++;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** One segment of a data path: an object key, and the array index it also is (-1 when it is not one). */
interface Step {
  readonly key: string;
  readonly index: number;
}

const arrayIndex = /^(?:0|[1-9][0-9]*)$/;

function stepsOf(name: string): readonly Step[] {
  return name
    .slice(dataPathPrefix.length)
    .split('.')
    .map((key) => ({ key, index: arrayIndex.test(key) ? Number(key) : -1 }));
}

/** The data paths of one expression or filter, split into steps once, and the walk along them. */
export class DataPaths {
  readonly #steps = new Map<string, readonly Step[]>();

  /** `names` as in CompiledExpression.attributes; names that are not data paths are ignored. */
  constructor(names: Iterable<string>) {
    for (const name of names) if (isDataPath(name)) this.#steps.set(name, stepsOf(name));
  }

  /**
   * The string, boolean or number at data path `name` in `json` (from
   * eventDataJson); `undefined` for null, an object, an array, or nothing there.
   */
  valueAt(json: unknown, name: string): string | boolean | number | undefined {
    const steps = this.#steps.get(name) ?? stepsOf(name);
    let value = json;
    for (const { key, index } of steps) {
      if (Array.isArray(value)) {
        if (index < 0) return undefined;
        value = value[index];
      } else if (typeof value === 'object' && value !== null) {
        // Own members only: `constructor` or `__proto__` is never a path into the data.
        if (!Object.hasOwn(value, key)) return undefined;
        value = (value as Readonly<Record<string, unknown>>)[key];
      } else {
        return undefined;
      }
    }
    return typeof value === 'string' || typeof value === 'boolean' || typeof value === 'number'
      ? value
      : undefined;
  }
}

/**
 * The attribute reader of plain-object events for an expression that reads
 * data paths: own properties as readOwnProperty reads them, and `data.<path>`
 * from `event.data` and `event.datacontenttype`, parsed at most once between
 * two calls of `forget` (the program calls it before each evaluation).
 */
export class PlainEventReader {
  readonly #paths: DataPaths;
  #parsed = false;
  #json: unknown = undefined;

  constructor(names: Iterable<string>) {
    this.#paths = new DataPaths(names);
  }

  forget(): void {
    this.#parsed = false;
    this.#json = undefined;
  }

  readonly read = (event: Readonly<Record<string, unknown>>, name: string): unknown => {
    if (!isDataPath(name)) return readOwnProperty(event, name);
    if (!this.#parsed) {
      this.#json = eventDataJson(readOwnProperty(event, 'data'), readOwnProperty(event, 'datacontenttype'));
      this.#parsed = true;
    }
    return this.#paths.valueAt(this.#json, name);
  };
}
