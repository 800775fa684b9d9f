/**
 * `x [NOT] IN (y1, y2, …)` (spec §3.4.5): equality as `=` has it, but with x's
 * type as the type every element is cast to (§3.7), so `'1' IN (1, 2)` is true.
 * Elements are tried in order and the first equal one ends the search, as a
 * chain of ORs would.
 */
import type { CesqlValue } from './ast.js';
import { overUtf8 } from './attributes.js';
import { castTo } from './coerce.js';
import type { Compiled, StaticType } from './compiled.js';
import { Context } from './context.js';
import type { SourceSpan } from './errors.js';
import { equalsOneOf, utf8Literal } from './utf8.js';
import { typeOf, type ValueType } from './values.js';

type Tables = Partial<Record<ValueType, ReadonlySet<CesqlValue>>>;

export function membership(
  operand: Compiled,
  set: readonly Compiled[],
  negated: boolean,
  span: SourceSpan,
): Compiled {
  const tables = constantTables(set, operand.type);
  return {
    type: 'Boolean',
    span,
    run: (ctx) => {
      const before = ctx.failures;
      const x = operand.run(ctx);
      if (ctx.failures !== before) return false;
      const type = typeOf(x);
      const table = tables[type];
      if (table !== undefined) return table.has(x) !== negated;
      const cast = castTo(type);
      for (const element of set) {
        const ahead = ctx.failures;
        const y = element.run(ctx);
        if (ctx.failures !== ahead) return false;
        if (cast(ctx, element.span, y) === x) return !negated;
      }
      return negated;
    },
  };
}

/**
 * `membership` for readers with UTF-8 bytes (compile.ts), given the node as
 * compiled for any reader: a String attribute against constant elements is
 * compared as bytes with the elements cast to String.
 */
export function membershipOverUtf8(
  operand: Compiled,
  set: readonly Compiled[],
  negated: boolean,
  generic: Compiled,
): Compiled {
  const strings = constantTables(set, operand.type).String;
  if (strings === undefined) return generic;
  const literals = [...strings].map((element) => utf8Literal(element as string));
  if (literals.some((literal) => literal === undefined)) return generic;
  const equal = equalsOneOf(literals as Uint8Array[]);
  return overUtf8(operand, (bytes, start, end) => equal(bytes, start, end) !== negated, generic);
}

/**
 * When every element is a constant: for each type x may have, the elements
 * cast to it, as a hash set — provided no cast fails, since then the loop has
 * to run to raise the cast error at the right moment.
 */
function constantTables(set: readonly Compiled[], operandType: StaticType): Tables {
  const tables: Tables = {};
  const values = set.map((element) => element.constant?.value);
  if (values.some((value) => value === undefined)) return tables;
  const types: readonly ValueType[] =
    operandType === 'Any' ? ['Boolean', 'Integer', 'String'] : [operandType];
  for (const type of types) {
    const cast = castTo(type);
    const scratch = new Context();
    const castValues = set.map((element, i) => cast(scratch, element.span, values[i] ?? false));
    if (scratch.failures === 0) tables[type] = new Set(castValues);
  }
  return tables;
}
