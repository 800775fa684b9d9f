/**
 * CESQL values (spec §3.1, §3.2) and the casts that cannot fail or that report
 * failure as `undefined`; casts that raise errors during evaluation are in
 * coerce.ts.
 */
import type { CesqlValue } from './ast.js';

export const integerMin = -2147483648;
export const integerMax = 2147483647;

export type ValueType = 'Boolean' | 'Integer' | 'String';

export function typeOf(value: CesqlValue): ValueType {
  return typeof value === 'string' ? 'String' : typeof value === 'number' ? 'Integer' : 'Boolean';
}

export function zeroOf(type: ValueType): CesqlValue {
  return type === 'String' ? '' : type === 'Integer' ? 0 : false;
}

export function isInteger(value: number): boolean {
  return Number.isInteger(value) && value >= integerMin && value <= integerMax;
}

/** Integer → String and Boolean → String (§3.7); neither can fail. */
export function stringOf(value: CesqlValue): string {
  return typeof value === 'string' ? value : String(value);
}

/** String → Integer (§3.7): base 10, optional sign, 32-bit range; `undefined` when it is not one. */
export function parseInteger(text: string): number | undefined {
  if (!/^[+-]?[0-9]+$/.test(text)) return undefined;
  const value = Number(text);
  if (value < integerMin || value > integerMax) return undefined;
  return value === 0 ? 0 : value;
}

/** String → Boolean (§3.7): "true" or "false" in any case; `undefined` otherwise. */
export function parseBoolean(text: string): boolean | undefined {
  const lower = text.toLowerCase();
  return lower === 'true' ? true : lower === 'false' ? false : undefined;
}

/**
 * An attribute value as CESQL sees it (§3.2): booleans, 32-bit integers and
 * strings as they are, anything else by its String representation (URIs and
 * timestamps are Strings already; a Date becomes its RFC 3339 form).
 * `undefined` and `null` mean the attribute is absent.
 */
export function fromAttribute(raw: unknown): CesqlValue | undefined {
  switch (typeof raw) {
    case 'string':
    case 'boolean':
      return raw;
    case 'number':
      return isInteger(raw) ? raw + 0 : String(raw);
    case 'undefined':
      return undefined;
    case 'object':
      if (raw === null) return undefined;
      return raw instanceof Date ? raw.toISOString() : String(raw);
    default:
      return String(raw);
  }
}
