/**
 * Implicit casts (spec §3.7) as operators and function parameters apply them:
 * a failed cast raises a CastError and gives the target type's zero value.
 *
 * One deliberate asymmetry: an implicit Integer → Boolean cast fails, while
 * the explicit BOOL(x) maps 0 to false and anything else to true. The TCK
 * asks for both (`NOT 10` is `true` with a cast error; `BOOL(100)` is `true`),
 * and failing keeps `1 AND x` from quietly meaning `x`.
 */
import type { CesqlValue } from './ast.js';
import type { Context } from './context.js';
import type { SourceSpan } from './errors.js';
import { parseBoolean, parseInteger, stringOf, type ValueType } from './values.js';

export type Cast<T extends CesqlValue> = (ctx: Context, span: SourceSpan, value: CesqlValue) => T;

export const toInteger: Cast<number> = (ctx, span, value) => {
  if (typeof value === 'number') return value;
  if (typeof value === 'boolean') return value ? 1 : 0;
  const parsed = parseInteger(value);
  if (parsed !== undefined) return parsed;
  ctx.fail('cast', span, 'cannot cast to Integer', value);
  return 0;
};

export const toBoolean: Cast<boolean> = (ctx, span, value) => {
  if (typeof value === 'boolean') return value;
  const parsed = typeof value === 'string' ? parseBoolean(value) : undefined;
  if (parsed !== undefined) return parsed;
  ctx.fail('cast', span, 'cannot cast to Boolean', value);
  return false;
};

export const toString: Cast<string> = (_ctx, _span, value) => stringOf(value);

const casts: Readonly<Record<ValueType, Cast<CesqlValue>>> = {
  Boolean: toBoolean,
  Integer: toInteger,
  String: toString,
};

export function castTo(type: ValueType): Cast<CesqlValue> {
  return casts[type];
}
