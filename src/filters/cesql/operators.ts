/**
 * Closures for the operators of spec §3.4. Each follows the contract in
 * context.ts: if an operand raised an error, return the zero value of the
 * operator's return type at once (which also gives AND and OR their
 * short-circuit); otherwise cast the operands (a failed cast is the
 * operator's own error, and it carries on with the cast's zero value).
 *
 * Integers are 32-bit: a result outside the range raises a MathError and
 * saturates to the nearest bound, as ABS(-2147483648) does in §3.5.2.
 */
import type { ArithmeticOperator, CesqlValue, ComparisonOperator, LogicalOperator } from './ast.js';
import { overUtf8 } from './attributes.js';
import { castTo, toBoolean, toInteger, toString } from './coerce.js';
import type { Compiled } from './compiled.js';
import type { Context } from './context.js';
import type { SourceSpan } from './errors.js';
import { compileLike, literalPattern } from './like.js';
import { equalsOneOf, likeTest, utf8Literal } from './utf8.js';
import { integerMax, integerMin, stringOf, typeOf, type ValueType } from './values.js';

export function not(operand: Compiled, span: SourceSpan): Compiled {
  return unary('Boolean', operand, span, false, (ctx, value) => !toBoolean(ctx, operand.span, value));
}

export function negate(operand: Compiled, span: SourceSpan): Compiled {
  return unary('Integer', operand, span, 0, (ctx, value) =>
    checked(ctx, span, 0 - toInteger(ctx, operand.span, value)),
  );
}

function checked(ctx: Context, span: SourceSpan, value: number): number {
  if (value >= integerMin && value <= integerMax) return value | 0; // | 0 also turns -0 into 0
  ctx.fail('math', span, 'integer overflow', value);
  return value > 0 ? integerMax : integerMin;
}

function divisionByZero(ctx: Context, span: SourceSpan): number {
  ctx.fail('math', span, 'division by zero');
  return 0;
}

const arithmeticOperations: Readonly<
  Record<ArithmeticOperator, (ctx: Context, span: SourceSpan, x: number, y: number) => number>
> = {
  '+': (ctx, span, x, y) => checked(ctx, span, x + y),
  '-': (ctx, span, x, y) => checked(ctx, span, x - y),
  // Both factors are below 2^31, so a double tells an overflowing product from an exact one.
  '*': (ctx, span, x, y) => checked(ctx, span, x * y),
  '/': (ctx, span, x, y) => (y === 0 ? divisionByZero(ctx, span) : checked(ctx, span, Math.trunc(x / y))),
  // JS % keeps the sign of the dividend, as §3.4.2 asks; -2147483648 % -1 is -0 there, hence | 0.
  '%': (ctx, span, x, y) => (y === 0 ? divisionByZero(ctx, span) : (x % y) | 0),
};

export function arithmetic(
  operator: ArithmeticOperator,
  left: Compiled,
  right: Compiled,
  span: SourceSpan,
): Compiled {
  const operation = arithmeticOperations[operator];
  return binary('Integer', left, right, span, 0, (ctx, x, y) =>
    operation(ctx, span, toInteger(ctx, left.span, x), toInteger(ctx, right.span, y)),
  );
}

const orderings: Readonly<Record<'<' | '<=' | '>' | '>=', (x: number, y: number) => boolean>> = {
  '<': (x, y) => x < y,
  '<=': (x, y) => x <= y,
  '>': (x, y) => x > y,
  '>=': (x, y) => x >= y,
};

/**
 * `=`, `!=` and `<>` are defined for each type, so the right operand's type
 * picks the definition and the left operand is cast to it (§3.7); when the
 * right operand is an attribute, its type in each event decides. The ordering
 * operators are defined for Integers only.
 */
export function comparison(
  operator: ComparisonOperator,
  left: Compiled,
  right: Compiled,
  span: SourceSpan,
): Compiled {
  if (operator === '=' || operator === '!=' || operator === '<>') {
    const negated = operator !== '=';
    const staticCast = right.type === 'Any' ? undefined : castTo(right.type);
    return binary('Boolean', left, right, span, false, (ctx, x, y) => {
      const cast = staticCast ?? castTo(typeOf(y));
      return (cast(ctx, left.span, x) === y) !== negated;
    });
  }
  const order = orderings[operator];
  return binary('Boolean', left, right, span, false, (ctx, x, y) =>
    order(toInteger(ctx, left.span, x), toInteger(ctx, right.span, y)),
  );
}

/**
 * `comparison` for readers with UTF-8 bytes (compile.ts), given the node as
 * compiled for any reader: an attribute compared with a constant, when the
 * attribute's value is a String. `attribute = 'text'` compares the String
 * with the String literal, and `constant = attribute` casts the constant to
 * String (the right operand's type) and compares; both are a comparison of
 * bytes. An attribute compared with an Integer or Boolean literal is cast to
 * it: that, and the ordering operators, stay as they are.
 */
export function comparisonOverUtf8(
  operator: ComparisonOperator,
  left: Compiled,
  right: Compiled,
  generic: Compiled,
): Compiled {
  if (operator !== '=' && operator !== '!=' && operator !== '<>') return generic;
  const negated = operator !== '=';
  const [operand, text] =
    left.attribute !== undefined && typeof right.constant?.value === 'string'
      ? [left, right.constant.value]
      : right.attribute !== undefined && left.constant !== undefined
        ? [right, stringOf(left.constant.value)]
        : [undefined, undefined];
  const literal = text === undefined ? undefined : utf8Literal(text);
  if (operand === undefined || literal === undefined) return generic;
  const equal = equalsOneOf([literal]);
  return overUtf8(operand, (bytes, start, end) => equal(bytes, start, end) !== negated, generic);
}

/** Evaluates both operands left to right, then combines them unless one of them raised an error. */
function binary<T extends CesqlValue>(
  type: ValueType,
  left: Compiled,
  right: Compiled,
  span: SourceSpan,
  zero: T,
  combine: (ctx: Context, x: CesqlValue, y: CesqlValue) => T,
): Compiled {
  return {
    type,
    span,
    run: (ctx) => {
      const before = ctx.failures;
      const x = left.run(ctx);
      if (ctx.failures !== before) return zero;
      const y = right.run(ctx);
      if (ctx.failures !== before) return zero;
      return combine(ctx, x, y);
    },
  };
}

/**
 * A run of AND, OR or XOR over Booleans. AND stops at the first false and OR
 * at the first true (§3.4.2); XOR needs every operand. Each operand gets its
 * own error check, because a failed cast of an earlier operand is this
 * operator's error and must not read as a failure of the next operand.
 */
export function logical(
  operator: LogicalOperator,
  operands: readonly Compiled[],
  span: SourceSpan,
): Compiled {
  // The value that ends the run early: false for AND, true for OR; XOR has none.
  const stopOn = operator === 'AND' ? false : operator === 'OR' ? true : undefined;
  return {
    type: 'Boolean',
    span,
    run: (ctx) => {
      let parity = false;
      for (const operand of operands) {
        const before = ctx.failures;
        const value = operand.run(ctx);
        if (ctx.failures !== before) return false;
        const truth = toBoolean(ctx, operand.span, value);
        if (truth === stopOn) return truth;
        parity = parity !== truth;
      }
      return stopOn === undefined ? parity : !stopOn;
    },
  };
}

/** `x [NOT] LIKE 'pattern'`: x is cast to String, the pattern compiled to a matcher once. */
export function like(operand: Compiled, pattern: string, negated: boolean, span: SourceSpan): Compiled {
  const matches = compileLike(pattern);
  return unary(
    'Boolean',
    operand,
    span,
    false,
    (ctx, value) => matches(toString(ctx, operand.span, value)) !== negated,
  );
}

/**
 * `like` for readers with UTF-8 bytes (compile.ts), given the node as
 * compiled for any reader: over a String attribute, a pattern of one of the
 * literal shapes tests the bytes.
 */
export function likeOverUtf8(
  operand: Compiled,
  pattern: string,
  negated: boolean,
  generic: Compiled,
): Compiled {
  const literal = literalPattern(pattern);
  const test = literal === undefined ? undefined : likeTest(literal);
  if (test === undefined) return generic;
  return overUtf8(operand, (bytes, start, end) => test(bytes, start, end) !== negated, generic);
}

/** Evaluates the operand, then applies the operator unless the operand raised an error. */
function unary<T extends CesqlValue>(
  type: ValueType,
  operand: Compiled,
  span: SourceSpan,
  zero: T,
  apply: (ctx: Context, value: CesqlValue) => T,
): Compiled {
  return {
    type,
    span,
    run: (ctx) => {
      const before = ctx.failures;
      const value = operand.run(ctx);
      return ctx.failures === before ? apply(ctx, value) : zero;
    },
  };
}
