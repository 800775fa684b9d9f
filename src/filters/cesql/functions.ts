/**
 * Built-in functions (spec §3.5, plus the casting functions INT, BOOL and
 * STRING that the spec's examples and the TCK use, and IS_BOOL / IS_INT from
 * the CESQL drafts). A name may have several fixed arities and at most one
 * variadic form; the compiler picks one by argument count and casts each
 * argument to its parameter type ('Any' takes the value as it is) before
 * `apply` runs, so `apply` can trust the types of its arguments.
 *
 * Every function returns a value of its return type even when it raises an
 * error, as §3.5.3 requires.
 */
import type { CesqlValue } from './ast.js';
import { toBoolean, toInteger } from './coerce.js';
import type { Context } from './context.js';
import type { SourceSpan } from './errors.js';
import { characterCount, sliceCharacters } from './text.js';
import { integerMax, integerMin, parseBoolean, parseInteger, stringOf, type ValueType } from './values.js';

export type ParameterType = ValueType | 'Any';

export interface FunctionDefinition {
  readonly parameters: readonly ParameterType[];
  /** The type of any further arguments, for a variadic function. */
  readonly rest?: ValueType;
  readonly returns: ValueType;
  readonly apply: (args: readonly CesqlValue[], ctx: Context, span: SourceSpan) => CesqlValue;
}

/** Arguments arrive cast to the parameter types, so the casts below only narrow the TS type. */
const text = (value: CesqlValue | undefined): string => value as string;
const integer = (value: CesqlValue | undefined): number => value as number;

const whitespaceRun = /^\p{White_Space}+|\p{White_Space}+$/gu;

function substring(args: readonly CesqlValue[], ctx: Context, span: SourceSpan): string {
  const value = text(args[0]);
  const position = integer(args[1]);
  const length = characterCount(value);
  if (position > length || position < -length) {
    ctx.fail('functionEvaluation', span, 'SUBSTRING position is outside the string', position);
    return '';
  }
  const count = args.length > 2 ? integer(args[2]) : length;
  if (count < 0) {
    ctx.fail('functionEvaluation', span, 'SUBSTRING length must not be negative', count);
    return '';
  }
  if (position === 0) return '';
  const start = position > 0 ? position - 1 : length + position;
  return sliceCharacters(value, start, Math.min(length, start + count));
}

/** LEFT and RIGHT: `y < 0` returns `x` with an error. */
function side(which: 'LEFT' | 'RIGHT'): FunctionDefinition['apply'] {
  return (args, ctx, span) => {
    const value = text(args[0]);
    const count = integer(args[1]);
    if (count < 0) {
      ctx.fail('functionEvaluation', span, `${which} length must not be negative`, count);
      return value;
    }
    const length = characterCount(value);
    if (count >= length) return value;
    return which === 'LEFT'
      ? sliceCharacters(value, 0, count)
      : sliceCharacters(value, length - count, length);
  };
}

const builtins: ReadonlyMap<string, readonly FunctionDefinition[]> = new Map<string, FunctionDefinition[]>([
  [
    'LENGTH',
    [{ parameters: ['String'], returns: 'Integer', apply: (args) => characterCount(text(args[0])) }],
  ],
  ['CONCAT', [{ parameters: [], rest: 'String', returns: 'String', apply: (args) => args.join('') }]],
  [
    'CONCAT_WS',
    [
      {
        parameters: ['String'],
        rest: 'String',
        returns: 'String',
        apply: (args) => args.slice(1).join(text(args[0])),
      },
    ],
  ],
  ['LOWER', [{ parameters: ['String'], returns: 'String', apply: (args) => text(args[0]).toLowerCase() }]],
  ['UPPER', [{ parameters: ['String'], returns: 'String', apply: (args) => text(args[0]).toUpperCase() }]],
  [
    'TRIM',
    [
      {
        parameters: ['String'],
        returns: 'String',
        apply: (args) => text(args[0]).replace(whitespaceRun, ''),
      },
    ],
  ],
  ['LEFT', [{ parameters: ['String', 'Integer'], returns: 'String', apply: side('LEFT') }]],
  ['RIGHT', [{ parameters: ['String', 'Integer'], returns: 'String', apply: side('RIGHT') }]],
  [
    'SUBSTRING',
    [
      { parameters: ['String', 'Integer'], returns: 'String', apply: substring },
      { parameters: ['String', 'Integer', 'Integer'], returns: 'String', apply: substring },
    ],
  ],
  [
    'ABS',
    [
      {
        parameters: ['Integer'],
        returns: 'Integer',
        apply: (args, ctx, span) => {
          const value = integer(args[0]);
          if (value !== integerMin) return Math.abs(value);
          ctx.fail('math', span, 'ABS overflows a 32-bit integer', value);
          return integerMax;
        },
      },
    ],
  ],
  [
    'INT',
    [
      {
        parameters: ['Any'],
        returns: 'Integer',
        apply: (args, ctx, span) => toInteger(ctx, span, args[0] ?? 0),
      },
    ],
  ],
  [
    'BOOL',
    [
      {
        parameters: ['Any'],
        returns: 'Boolean',
        // Explicitly, unlike implicitly, an Integer is true unless it is 0 (§3.7).
        apply: (args, ctx, span) => {
          const value = args[0] ?? false;
          return typeof value === 'number' ? value !== 0 : toBoolean(ctx, span, value);
        },
      },
    ],
  ],
  ['STRING', [{ parameters: ['Any'], returns: 'String', apply: (args) => stringOf(args[0] ?? '') }]],
  [
    'IS_BOOL',
    [
      {
        parameters: ['String'],
        returns: 'Boolean',
        apply: (args) => parseBoolean(text(args[0])) !== undefined,
      },
    ],
  ],
  [
    'IS_INT',
    [
      {
        parameters: ['String'],
        returns: 'Boolean',
        apply: (args) => parseInteger(text(args[0])) !== undefined,
      },
    ],
  ],
]);

/** The definition `name(…)` with `arity` arguments dispatches to, if any. */
export function resolveFunction(name: string, arity: number): FunctionDefinition | undefined {
  const overloads = builtins.get(name) ?? [];
  return (
    overloads.find((definition) => definition.rest === undefined && definition.parameters.length === arity) ??
    overloads.find((definition) => definition.rest !== undefined && arity >= definition.parameters.length)
  );
}
