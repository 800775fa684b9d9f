/** The syntax tree the parser builds and the compiler consumes. Every node knows where it was written. */
import type { SourceSpan } from './errors.js';

/** The three CESQL value types as JS values: Integer is a 32-bit signed number. */
export type CesqlValue = boolean | number | string;

export type ComparisonOperator = '=' | '!=' | '<>' | '<' | '<=' | '>' | '>=';
export type ArithmeticOperator = '+' | '-' | '*' | '/' | '%';
export type LogicalOperator = 'AND' | 'OR' | 'XOR';

export type Expression =
  | { readonly kind: 'literal'; readonly value: CesqlValue; readonly span: SourceSpan }
  | { readonly kind: 'attribute'; readonly name: string; readonly span: SourceSpan }
  | { readonly kind: 'exists'; readonly name: string; readonly span: SourceSpan }
  | { readonly kind: 'not'; readonly operand: Expression; readonly span: SourceSpan }
  | { readonly kind: 'negate'; readonly operand: Expression; readonly span: SourceSpan }
  | {
      readonly kind: 'comparison';
      readonly operator: ComparisonOperator;
      readonly left: Expression;
      readonly right: Expression;
      readonly span: SourceSpan;
    }
  | {
      readonly kind: 'arithmetic';
      readonly operator: ArithmeticOperator;
      readonly left: Expression;
      readonly right: Expression;
      readonly span: SourceSpan;
    }
  | {
      /** A run of one operator, `a AND b AND c`, kept flat so long filters do not nest deeply. */
      readonly kind: 'logical';
      readonly operator: LogicalOperator;
      readonly operands: readonly Expression[];
      readonly span: SourceSpan;
    }
  | {
      readonly kind: 'like';
      readonly operand: Expression;
      /** The pattern literal's value, escapes still in place for the LIKE matcher. */
      readonly pattern: string;
      readonly negated: boolean;
      readonly span: SourceSpan;
    }
  | {
      readonly kind: 'in';
      readonly operand: Expression;
      readonly set: readonly Expression[];
      readonly negated: boolean;
      readonly span: SourceSpan;
    }
  | {
      readonly kind: 'call';
      /** Upper case: function names are case-insensitive. */
      readonly name: string;
      readonly args: readonly Expression[];
      readonly span: SourceSpan;
    };
