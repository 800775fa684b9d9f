/** What the compiler turns each syntax node into: a closure over the evaluation context, and what is known statically. */
import type { CesqlValue } from './ast.js';
import type { Context } from './context.js';
import type { SourceSpan } from './errors.js';
import { typeOf, type ValueType } from './values.js';

/** A value type known at compile time, or 'Any' for attributes, whose type each event decides. */
export type StaticType = ValueType | 'Any';

export type Evaluator = (ctx: Context) => CesqlValue;

export interface Compiled {
  readonly type: StaticType;
  readonly span: SourceSpan;
  readonly run: Evaluator;
  /** Present when the value is known at compile time and computing it raises no error. */
  readonly constant?: { readonly value: CesqlValue };
  /**
   * Present on a plain attribute read (not `data`, not a data path): its name,
   * so that operators comparing it with literals can ask a UTF-8 reader for
   * the value's bytes instead (utf8.ts).
   */
  readonly attribute?: string;
}

export function constant(value: CesqlValue, span: SourceSpan): Compiled {
  return { type: typeOf(value), span, run: () => value, constant: { value } };
}
