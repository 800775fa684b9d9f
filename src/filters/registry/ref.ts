/**
 * Names and references of stored filters. A name follows the topic-name rules
 * (dot-separated words of letters, digits, `-` and `_`), at most 128
 * characters, so it is also a safe directory name: no `.`, `..`, leading dot,
 * separator or empty word. A reference is `name` (the latest version) or
 * `name@version`, the version a positive decimal integer without leading zeros.
 *
 *   orders-over-100        the latest version
 *   orders-over-100@3      version 3
 */
import { FilterError } from '../wasm/errors.js';

export const FILTER_NAME_LENGTH_MAX = 128;
/** The highest version number (fits an i32 on the wire). */
export const FILTER_VERSION_MAX = 2 ** 31 - 1;

const FILTER_NAME = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;
const VERSION = /^[1-9][0-9]*$/;

export interface FilterRef {
  readonly name: string;
  /** Null for a bare name: the latest version. */
  readonly version: number | null;
}

/** Why `name` cannot name a filter, or null if it can. */
export function invalidFilterName(name: string): string | null {
  if (name.length === 0) return 'a filter name must not be empty';
  if (name.length > FILTER_NAME_LENGTH_MAX)
    return `a filter name must be at most ${FILTER_NAME_LENGTH_MAX} characters`;
  if (!FILTER_NAME.test(name))
    return 'a filter name is dot-separated words of letters, digits, "-" and "_" (no empty word)';
  return null;
}

/** Why `version` cannot number a filter version, or null if it can. */
export function invalidFilterVersion(version: number): string | null {
  if (!Number.isInteger(version) || version < 1 || version > FILTER_VERSION_MAX)
    return `a filter version is an integer from 1 to ${FILTER_VERSION_MAX}, got ${String(version)}`;
  return null;
}

function invalidRef(ref: string, reason: string): FilterError {
  return new FilterError('FILTER_INVALID_REF', `invalid filter reference "${ref}": ${reason}`, {
    filterId: ref,
  });
}

/** Checks a filter name; throws a FilterError FILTER_INVALID_REF, or a TypeError for a non-string. */
export function checkFilterName(name: string): string {
  if (typeof name !== 'string') throw new TypeError('a filter name must be a string');
  const reason = invalidFilterName(name);
  if (reason !== null) throw invalidRef(name, reason);
  return name;
}

/** Parses `name` or `name@version`; throws a FilterError FILTER_INVALID_REF, or a TypeError for a non-string. */
export function parseFilterRef(ref: string): FilterRef {
  if (typeof ref !== 'string') throw new TypeError('a filter reference must be a string');
  const at = ref.indexOf('@');
  const name = at === -1 ? ref : ref.slice(0, at);
  const reason = invalidFilterName(name);
  if (reason !== null) throw invalidRef(ref, reason);
  if (at === -1) return { name, version: null };
  const text = ref.slice(at + 1);
  if (!VERSION.test(text))
    throw invalidRef(ref, 'the version after "@" is a positive integer without leading zeros');
  const version = Number(text);
  const versionReason = invalidFilterVersion(version);
  if (versionReason !== null) throw invalidRef(ref, versionReason);
  return { name, version };
}

/** `name@version`. */
export function formatFilterRef(name: string, version: number): string {
  return `${name}@${version}`;
}
