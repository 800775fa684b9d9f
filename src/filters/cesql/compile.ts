/**
 * Turns the syntax tree into a tree of closures, once per expression, so that
 * evaluating an event runs straight-line code instead of walking the tree.
 *
 * Along the way it folds what is legal to fold: a subtree whose inputs are
 * all constants is evaluated once, and kept as a constant unless that raised
 * an error (`5 / 0` must still raise a MathError per event); constant true
 * operands of AND and constant false operands of OR are dropped, and whatever
 * follows a constant false in AND (true in OR) is never evaluated, so it goes.
 *
 * Function calls are resolved here: a name or arity with no definition is a
 * MissingFunctionError at compile time, so that a filter that could never work
 * is rejected when it is created rather than failing on every event.
 */
import type { CesqlValue, Expression, LogicalOperator } from './ast.js';
import { attribute, exists, existsOverUtf8 } from './attributes.js';
import { castTo } from './coerce.js';
import { constant, type Compiled } from './compiled.js';
import { Context } from './context.js';
import { CesqlMissingFunctionError, type SourceSpan } from './errors.js';
import { resolveFunction, type FunctionDefinition } from './functions.js';
import { membership, membershipOverUtf8 } from './membership.js';
import {
  arithmetic,
  comparison,
  comparisonOverUtf8,
  like,
  likeOverUtf8,
  logical,
  negate,
  not,
} from './operators.js';
import { zeroOf } from './values.js';

export interface CompiledTree {
  readonly root: Compiled;
  /**
   * The attribute names the expression reads (EXISTS included), lower case;
   * data paths as `data.` and the path as written.
   */
  readonly attributes: readonly string[];
  /**
   * The expression compiled for readers with UTF-8 bytes (context.ts,
   * utf8.ts), whose String attributes compared with literals are tested as
   * bytes. A tree of its own, so that evaluating plain objects pays nothing
   * for the shortcuts; compiled on first use, as most expressions only ever
   * meet one kind of reader.
   */
  readonly overUtf8: () => Compiled;
}

export function compileTree(tree: Expression): CompiledTree {
  const compiler = new Compiler(false);
  const root = compiler.compile(tree);
  let overUtf8: Compiled | undefined;
  return {
    root,
    attributes: [...compiler.attributes],
    overUtf8: () => (overUtf8 ??= new Compiler(true).compile(tree)),
  };
}

class Compiler {
  readonly attributes = new Set<string>();
  /** Evaluates constant subtrees; they read no attributes. */
  readonly #scratch = new Context();
  /** Whether to compile for readers with UTF-8 bytes (CompiledTree.overUtf8). */
  readonly #utf8: boolean;

  constructor(utf8: boolean) {
    this.#utf8 = utf8;
  }

  compile(node: Expression): Compiled {
    switch (node.kind) {
      case 'literal':
        return constant(node.value, node.span);
      case 'attribute':
        this.attributes.add(node.name);
        return attribute(node.name, node.span);
      case 'exists': {
        this.attributes.add(node.name);
        const generic = exists(node.name, node.span);
        return this.#utf8 ? existsOverUtf8(node.name, generic) : generic;
      }
      case 'not':
        return this.#folded(not, node.operand, node.span);
      case 'negate':
        return this.#folded(negate, node.operand, node.span);
      case 'comparison':
      case 'arithmetic': {
        const left = this.compile(node.left);
        const right = this.compile(node.right);
        let compiled: Compiled;
        if (node.kind === 'arithmetic') {
          compiled = arithmetic(node.operator, left, right, node.span);
        } else {
          compiled = comparison(node.operator, left, right, node.span);
          if (this.#utf8) compiled = comparisonOverUtf8(node.operator, left, right, compiled);
        }
        return this.#fold(compiled, [left, right]);
      }
      case 'logical':
        return this.#logical(node.operator, node.operands, node.span);
      case 'like': {
        const operand = this.compile(node.operand);
        const generic = like(operand, node.pattern, node.negated, node.span);
        const compiled = this.#utf8 ? likeOverUtf8(operand, node.pattern, node.negated, generic) : generic;
        return this.#fold(compiled, [operand]);
      }
      case 'in': {
        const operand = this.compile(node.operand);
        const set = node.set.map((element) => this.compile(element));
        const generic = membership(operand, set, node.negated, node.span);
        const compiled = this.#utf8 ? membershipOverUtf8(operand, set, node.negated, generic) : generic;
        return this.#fold(compiled, [operand, ...set]);
      }
      case 'call': {
        const definition = resolveFunction(node.name, node.args.length);
        if (definition === undefined) {
          throw new CesqlMissingFunctionError(
            `no function ${node.name} taking ${node.args.length} argument(s)`,
            node.span,
          );
        }
        const args = node.args.map((arg) => this.compile(arg));
        return this.#fold(call(definition, args, node.span), args);
      }
    }
  }

  #folded(build: (operand: Compiled, span: SourceSpan) => Compiled, node: Expression, span: SourceSpan) {
    const operand = this.compile(node);
    return this.#fold(build(operand, span), [operand]);
  }

  #logical(operator: LogicalOperator, nodes: readonly Expression[], span: SourceSpan): Compiled {
    const operands: Compiled[] = [];
    for (const node of nodes) {
      const operand = this.compile(node);
      const known = operand.type === 'Boolean' ? operand.constant?.value : undefined;
      if (operator === 'XOR' || known === undefined) {
        operands.push(operand);
        continue;
      }
      const decisive = operator === 'OR';
      if (known !== decisive) continue; // true in AND, false in OR: changes nothing
      operands.push(operand);
      break; // nothing after it is ever evaluated
    }
    if (operands.length === 0) return constant(operator === 'AND', span);
    return this.#fold(logical(operator, operands, span), operands);
  }

  /** `compiled` as a constant when all its inputs are constants and evaluating it raises no error. */
  #fold(compiled: Compiled, inputs: readonly Compiled[]): Compiled {
    if (inputs.some((input) => input.constant === undefined)) return compiled;
    this.#scratch.reset(undefined, () => undefined, false);
    const value = compiled.run(this.#scratch);
    return this.#scratch.failures === 0 ? constant(value, compiled.span) : compiled;
  }
}

/**
 * A call: arguments are evaluated left to right and cast to the parameter
 * types; a failed cast is the function's own error, and it still runs. The
 * argument array is reused across evaluations (a compiled expression is not
 * re-entrant; see program.ts).
 */
function call(definition: FunctionDefinition, args: readonly Compiled[], span: SourceSpan): Compiled {
  const slots = args.map((arg, i) => {
    const type = definition.parameters[i] ?? definition.rest;
    return { arg, cast: type === undefined || type === 'Any' ? undefined : castTo(type) };
  });
  const values: CesqlValue[] = args.map(() => false);
  const zero = zeroOf(definition.returns);
  return {
    type: definition.returns,
    span,
    run: (ctx) => {
      let i = 0;
      for (const { arg, cast } of slots) {
        const before = ctx.failures;
        const value = arg.run(ctx);
        if (ctx.failures !== before) return zero;
        values[i++] = cast === undefined ? value : cast(ctx, arg.span, value);
      }
      return definition.apply(values, ctx, span);
    },
  };
}
