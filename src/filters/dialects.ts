/**
 * The CloudEvents Subscriptions API filter dialects (Subscriptions spec
 * §3.2.4): `exact`, `prefix`, `suffix`, `all`, `any`, `not`, and `sql`
 * (CESQL, compiled by the engine in ./cesql). A filter is a JSON object with
 * exactly one dialect key:
 *
 *   { "exact":  { "type": "com.example.created" } }      every attribute equals its value
 *   { "prefix": { "subject": "orders/" } }                every attribute starts with its value
 *   { "suffix": { "type": ".created" } }                  every attribute ends with its value
 *   { "all":    [filter, …] }   { "any": [filter, …] }    at least one filter each
 *   { "not":    filter }
 *   { "sql":    "source LIKE '%example%'" }               true only for Boolean true with no error
 *
 * `compileFilter` validates the whole filter up front and throws an
 * InvalidFilterError naming the rule and where in the filter it was broken,
 * so a subscription with a bad filter is rejected when created (the spec's
 * MUST). A missing attribute never matches `exact`, `prefix` or `suffix`;
 * non-string attribute values compare by their CESQL String form (`5`, `true`).
 */
import { CesqlError, compile, type AttributeReader, type CloudEventAttributes } from './cesql.js';
import { isDataPath, readOwnProperty } from './cesql/attributes.js';
import { PlainEventReader } from './cesql/data.js';
import { fromAttribute, stringOf } from './cesql/values.js';

export const filterDialects = ['exact', 'prefix', 'suffix', 'all', 'any', 'not', 'sql'] as const;
export type FilterDialect = (typeof filterDialects)[number];

/** How deep `all`, `any` and `not` may nest, so that evaluating a filter cannot exhaust the stack. */
export const maxFilterDepth = 32;

export const invalidFilterReasons = [
  'notAnObject',
  'dialectCount',
  'unknownDialect',
  'invalidValue',
  'emptyList',
  'noAttributes',
  'invalidAttributeName',
  'emptyValue',
  'invalidExpression',
  'notBoolean',
  'tooDeep',
] as const;
export type InvalidFilterReason = (typeof invalidFilterReasons)[number];

export class InvalidFilterError extends Error {
  override readonly name = 'InvalidFilterError';
  readonly reason: InvalidFilterReason;
  /** JSON Pointer to the offending part of the filter, e.g. `/all/1/exact/type`. */
  readonly path: string;
  /** For `invalidExpression`: the CESQL parse or missing-function error, with its span. */
  override readonly cause: CesqlError | undefined;

  constructor(reason: InvalidFilterReason, path: string, detail: string, cause?: CesqlError) {
    super(`invalid filter at ${path === '' ? '/' : path}: ${detail}`);
    this.reason = reason;
    this.path = path;
    this.cause = cause;
  }
}

export interface CompiledFilter {
  /** Attribute names the filter reads, each once (data paths of `sql` filters included). */
  readonly attributes: readonly string[];
  matches(event: CloudEventAttributes): boolean;
  matchesWith<Source>(source: Source, read: AttributeReader<Source>): boolean;
}

type Predicate = (source: unknown, read: AttributeReader<unknown>) => boolean;

/** A CloudEvents attribute name: lower-case letters and digits (CloudEvents §naming conventions). */
const attributeName = /^[a-z0-9]+$/;

/** Compiles one filter; throws InvalidFilterError when it breaks a rule of its dialect. */
export function compileFilter(filter: unknown): CompiledFilter {
  const attributes = new Set<string>();
  return finish(compileAt(filter, '', 0, attributes), attributes);
}

/** A subscription's `filters`: every one must match; none at all matches every event. */
export function compileFilters(filters: unknown): CompiledFilter {
  if (!Array.isArray(filters)) throw new InvalidFilterError('invalidValue', '', 'filters must be an array');
  const attributes = new Set<string>();
  const predicates = filters.map((filter, i) => compileAt(filter, `/${i}`, 0, attributes));
  return finish(every(predicates), attributes);
}

function finish(predicate: Predicate, attributes: ReadonlySet<string>): CompiledFilter {
  const names = Object.freeze([...attributes]);
  // `sql` filters may read data paths; over plain events only they need the reader of `data`.
  const reader = names.some(isDataPath) ? new PlainEventReader(names) : undefined;
  return {
    attributes: names,
    matches:
      reader === undefined
        ? (event) => predicate(event, readOwnProperty as AttributeReader<unknown>)
        : (event) => {
            reader.forget();
            return predicate(event, reader.read as AttributeReader<unknown>);
          },
    matchesWith: (source, read) => predicate(source, read as AttributeReader<unknown>),
  };
}

function compileAt(filter: unknown, path: string, depth: number, attributes: Set<string>): Predicate {
  if (depth > maxFilterDepth) {
    throw new InvalidFilterError('tooDeep', path, `filters nest deeper than ${maxFilterDepth} levels`);
  }
  if (!isObject(filter)) throw new InvalidFilterError('notAnObject', path, 'a filter must be a JSON object');
  const keys = Object.keys(filter);
  const dialect = keys[0];
  if (keys.length !== 1 || dialect === undefined) {
    throw new InvalidFilterError(
      'dialectCount',
      path,
      `a filter has exactly one dialect key, found ${keys.length === 0 ? 'none' : keys.join(', ')}`,
    );
  }
  const value = filter[dialect];
  const at = `${path}/${escapePointer(dialect)}`;
  switch (dialect) {
    case 'exact':
      return comparing(value, at, attributes, (actual, expected) => actual === expected);
    case 'prefix':
      return comparing(value, at, attributes, (actual, expected) => actual.startsWith(expected));
    case 'suffix':
      return comparing(value, at, attributes, (actual, expected) => actual.endsWith(expected));
    case 'all':
    case 'any': {
      if (!Array.isArray(value))
        throw new InvalidFilterError('invalidValue', at, `${dialect} takes an array`);
      if (value.length === 0)
        throw new InvalidFilterError('emptyList', at, `${dialect} needs at least one filter`);
      const predicates = value.map((nested, i) => compileAt(nested, `${at}/${i}`, depth + 1, attributes));
      return dialect === 'all' ? every(predicates) : some(predicates);
    }
    case 'not': {
      const predicate = compileAt(value, at, depth + 1, attributes);
      return (source, read) => !predicate(source, read);
    }
    case 'sql':
      return sql(value, at, attributes);
    default:
      throw new InvalidFilterError(
        'unknownDialect',
        at,
        `unknown dialect ${JSON.stringify(dialect)}; supported: ${filterDialects.join(', ')}`,
      );
  }
}

/** `exact`, `prefix` and `suffix`: every named attribute is present and its String form passes `test`. */
function comparing(
  value: unknown,
  path: string,
  attributes: Set<string>,
  test: (actual: string, expected: string) => boolean,
): Predicate {
  if (!isObject(value))
    throw new InvalidFilterError('invalidValue', path, 'expected an object of attribute values');
  const entries = Object.entries(value);
  if (entries.length === 0) throw new InvalidFilterError('noAttributes', path, 'name at least one attribute');
  const checks = entries.map(([name, expected]) => {
    const at = `${path}/${escapePointer(name)}`;
    if (!attributeName.test(name)) {
      throw new InvalidFilterError(
        'invalidAttributeName',
        at,
        `${JSON.stringify(name)} is not a CloudEvents attribute name (lower-case letters and digits)`,
      );
    }
    if (typeof expected !== 'string')
      throw new InvalidFilterError('invalidValue', at, 'the value must be a string');
    if (expected === '') throw new InvalidFilterError('emptyValue', at, 'the value must not be empty');
    attributes.add(name);
    return { name, expected };
  });
  return (source, read) => {
    for (const { name, expected } of checks) {
      const actual = attributeText(source, read, name);
      if (actual === undefined || !test(actual, expected)) return false;
    }
    return true;
  };
}

/** An attribute's String form, or undefined when it is missing or the reader fails (the filter then fails closed). */
function attributeText(source: unknown, read: AttributeReader<unknown>, name: string): string | undefined {
  let raw: unknown;
  try {
    raw = read(source, name);
  } catch {
    return undefined;
  }
  const value = fromAttribute(raw);
  return value === undefined ? undefined : stringOf(value);
}

function sql(value: unknown, path: string, attributes: Set<string>): Predicate {
  if (typeof value !== 'string') throw new InvalidFilterError('invalidValue', path, 'sql takes a string');
  let expression;
  try {
    expression = compile(value);
  } catch (error) {
    if (!(error instanceof CesqlError)) throw error;
    throw new InvalidFilterError('invalidExpression', path, error.message, error);
  }
  // A result known to be an Integer or a String can never be Boolean true, so the filter could never match.
  if (expression.resultType === 'Integer' || expression.resultType === 'String') {
    throw new InvalidFilterError(
      'notBoolean',
      path,
      `the expression gives ${expression.resultType}, not Boolean`,
    );
  }
  for (const name of expression.attributes) attributes.add(name);
  return (source, read) => expression.matchesWith(source, read);
}

function every(predicates: readonly Predicate[]): Predicate {
  return (source, read) => {
    for (const predicate of predicates) if (!predicate(source, read)) return false;
    return true;
  };
}

function some(predicates: readonly Predicate[]): Predicate {
  return (source, read) => {
    for (const predicate of predicates) if (predicate(source, read)) return true;
    return false;
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** RFC 6901: `~` and `/` in a key are written `~0` and `~1`. */
function escapePointer(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}
