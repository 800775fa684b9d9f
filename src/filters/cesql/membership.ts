/**
 * `x [NOT] IN (y1, y2, …)` (spec §3.4.5): equality as `=` has it, but with x's
 * type as the type every element is cast to (§3.7), so `'1' IN (1, 2)` is true.
 * Elements are tried in order and the first equal one ends the search, as a
 * chain of ORs would.
 */
import type { CesqlValue } from './ast.js';
import { castTo } from './coerce.js';
import type { Compiled, StaticType } from './compiled.js';
import { Context } from './context.js';
import type { SourceSpan } from './errors.js';
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
