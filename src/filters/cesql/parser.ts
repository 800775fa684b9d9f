/**
 * Recursive-descent parser for CESQL v1 (spec §2 and §3.6). Precedence, tightest first:
 *
 *   primary     literal | attribute | function(args) | EXISTS attribute | ( expression )
 *   attribute   name | data.path (Eddy's extension, one token; see data.ts)
 *   unary       NOT unary | - unary
 *   postfix     unary ( [NOT] LIKE 'pattern' | [NOT] IN (expression, …) )*
 *   multiply    postfix ( (* | / | %) postfix )*
 *   add         multiply ( (+ | -) multiply )*
 *   compare     add ( (= | != | <> | < | <= | > | >=) add )*
 *   logical     compare ( (AND | OR | XOR) compare )*
 *
 * Operators of equal precedence apply left to right, as §3.6 requires; that
 * includes AND, OR and XOR, which share one level (`a OR b AND c` is
 * `(a OR b) AND c`). LIKE and IN are postfix, so one loop applies them in the
 * order written, as the reference grammar does. Keywords are case-insensitive
 * and attribute names are lower-cased (CloudEvents attribute names are lower
 * case), so `EXISTS SOURCE` means `EXISTS source`; the segments of a
 * data path stay as written, since JSON keys are case-sensitive.
 *
 * A `-` before an integer literal makes a negative literal (and a `+` a
 * positive one), so that -2147483648 is a valid Integer although 2147483648
 * is not; before anything else, `-` is the unary minus operator.
 */
import type {
  ArithmeticOperator,
  ComparisonOperator,
  CesqlValue,
  Expression,
  LogicalOperator,
} from './ast.js';
import { CesqlParseError } from './errors.js';
import { tokenize, type Token } from './lexer.js';
import type { SourceText } from './source.js';
import { integerMax, integerMin } from './values.js';

/**
 * How deep the syntax tree may nest. Compiling and evaluating recurse once per
 * level, so the bound keeps a hostile expression from exhausting the stack;
 * runs of AND/OR/XOR are flat and do not count against it.
 */
export const maxExpressionDepth = 200;

const keywords = new Set(['AND', 'OR', 'XOR', 'NOT', 'LIKE', 'IN', 'EXISTS', 'TRUE', 'FALSE']);
const comparisonOperators = new Set<string>(['=', '!=', '<>', '<', '<=', '>', '>=']);
const attributeName = /^[A-Za-z0-9]+$/;
const functionName = /^[A-Za-z][A-Za-z_]*$/;

export function parse(source: SourceText): Expression {
  return new Parser(source).parseAll();
}

class Parser {
  readonly #source: SourceText;
  readonly #tokens: Token[];
  /** The `end` token, which every read past the last token sees. */
  readonly #end: Token;
  #index = 0;
  /** Nesting of the recursive calls in progress. */
  #depth = 0;
  /** Height of each subtree built so far, kept beside the tree so the nodes stay plain data. */
  readonly #depths = new Map<Expression, number>();

  constructor(source: SourceText) {
    this.#source = source;
    this.#tokens = tokenize(source);
    this.#end = { kind: 'end', text: '', value: '', offset: source.text.length };
  }

  parseAll(): Expression {
    const expression = this.#logical();
    const token = this.#peek();
    if (token.kind !== 'end') throw this.#unexpected(token, 'an operator or the end of the expression');
    return expression;
  }

  #logical(): Expression {
    let left = this.#comparison();
    let operator = this.#peekKeyword();
    while (operator === 'AND' || operator === 'OR' || operator === 'XOR') {
      const operands = [left];
      const runOperator: LogicalOperator = operator;
      while (operator === runOperator) {
        this.#index++;
        operands.push(this.#comparison());
        operator = this.#peekKeyword();
      }
      left = this.#node(
        { kind: 'logical', operator: runOperator, operands },
        operands,
        start(left),
        end(operands),
      );
    }
    return left;
  }

  #comparison(): Expression {
    let left = this.#additive();
    for (let token = this.#peek(); token.kind === 'operator' && comparisonOperators.has(token.text);) {
      this.#index++;
      const right = this.#additive();
      const operator = token.text as ComparisonOperator;
      left = this.#node(
        { kind: 'comparison', operator, left, right },
        [left, right],
        start(left),
        end([right]),
      );
      token = this.#peek();
    }
    return left;
  }

  #additive(): Expression {
    return this.#arithmetic(['+', '-'], () => this.#multiplicative());
  }

  #multiplicative(): Expression {
    return this.#arithmetic(['*', '/', '%'], () => this.#postfix());
  }

  #arithmetic(operators: readonly ArithmeticOperator[], operand: () => Expression): Expression {
    let left = operand();
    for (let token = this.#peek(); token.kind === 'operator'; token = this.#peek()) {
      const operator = operators.find((candidate) => candidate === token.text);
      if (operator === undefined) break;
      this.#index++;
      const right = operand();
      left = this.#node(
        { kind: 'arithmetic', operator, left, right },
        [left, right],
        start(left),
        end([right]),
      );
    }
    return left;
  }

  #postfix(): Expression {
    let operand = this.#unary();
    for (;;) {
      const negated = this.#peekKeyword() === 'NOT';
      const keyword = this.#peekKeyword(negated ? 1 : 0);
      if (keyword !== 'LIKE' && keyword !== 'IN') return operand;
      this.#index += negated ? 2 : 1;
      if (keyword === 'LIKE') {
        const pattern = this.#next();
        if (pattern.kind !== 'string') throw this.#unexpected(pattern, 'a string literal after LIKE');
        const like = { kind: 'like', operand, pattern: pattern.value, negated } as const;
        operand = this.#node(like, [operand], start(operand), tokenEnd(pattern));
      } else {
        const set = this.#nested(() => this.#list('a set of values after IN'));
        if (set.items.length === 0) throw this.#unexpected(set.close, 'at least one value in the IN set');
        const membership = { kind: 'in', operand, set: set.items, negated } as const;
        operand = this.#node(membership, [operand, ...set.items], start(operand), tokenEnd(set.close));
      }
    }
  }

  #unary(): Expression {
    const first = this.#peek();
    if (this.#peekKeyword() === 'NOT') {
      this.#index++;
      const operand = this.#nested(() => this.#unary());
      return this.#node({ kind: 'not', operand }, [operand], first.offset, end([operand]));
    }
    if (first.kind === 'operator' && (first.text === '-' || first.text === '+')) {
      this.#index++;
      const digits = this.#peek();
      if (digits.kind === 'integer') {
        this.#index++;
        return this.#integer(first.text === '-' ? `-${digits.text}` : digits.text, first, digits);
      }
      if (first.text === '+') throw this.#unexpected(digits, 'digits after a plus sign');
      const operand = this.#nested(() => this.#unary());
      return this.#node({ kind: 'negate', operand }, [operand], first.offset, end([operand]));
    }
    return this.#primary();
  }

  #primary(): Expression {
    const token = this.#next();
    if (token.kind === 'integer') return this.#integer(token.text, token, token);
    if (token.kind === 'string') return this.#leaf({ kind: 'literal', value: token.value }, token, token);
    if (token.kind === 'path') return this.#leaf({ kind: 'attribute', name: token.value }, token, token);
    if (token.kind === 'operator' && token.text === '(') {
      const inner = this.#nested(() => this.#logical());
      this.#expect(')', 'a closing parenthesis');
      return inner;
    }
    if (token.kind !== 'word') throw this.#unexpected(token, 'an expression');
    const keyword = token.text.toUpperCase();
    if (keyword === 'TRUE' || keyword === 'FALSE') {
      return this.#leaf({ kind: 'literal', value: keyword === 'TRUE' }, token, token);
    }
    if (keyword === 'EXISTS') {
      const name = this.#next();
      return this.#leaf({ kind: 'exists', name: this.#attributeName(name) }, token, name);
    }
    if (keywords.has(keyword)) throw this.#unexpected(token, 'an expression');
    if (this.#peekOperator('(')) {
      if (!functionName.test(token.text)) throw this.#unexpected(token, 'a function name (letters and _)');
      const args = this.#nested(() => this.#list('an argument list'));
      const call = { kind: 'call', name: keyword, args: args.items } as const;
      return this.#node(call, args.items, token.offset, tokenEnd(args.close));
    }
    return this.#leaf({ kind: 'attribute', name: this.#attributeName(token) }, token, token);
  }

  /** `( expression, … )`, possibly empty; the caller decides whether empty is allowed. */
  #list(expected: string): { items: Expression[]; close: Token } {
    this.#expect('(', expected);
    const items: Expression[] = [];
    if (!this.#peekOperator(')')) {
      items.push(this.#logical());
      while (this.#peekOperator(',')) {
        this.#index++;
        items.push(this.#logical());
      }
    }
    return { items, close: this.#expect(')', 'a comma or a closing parenthesis') };
  }

  #integer(digits: string, first: Token, last: Token): Expression {
    const value = Number(digits);
    if (value < integerMin || value > integerMax) {
      throw new CesqlParseError(
        `integer literal ${digits} is outside the 32-bit range`,
        this.#source.span(first.offset, tokenEnd(last) - first.offset),
      );
    }
    // Number('-0') is -0; an Integer has one zero.
    return this.#leaf({ kind: 'literal', value: value === 0 ? 0 : value }, first, last);
  }

  #attributeName(token: Token): string {
    if (token.kind === 'path') return token.value;
    if (token.kind !== 'word' || keywords.has(token.text.toUpperCase())) {
      throw this.#unexpected(token, 'an attribute name');
    }
    if (!attributeName.test(token.text)) {
      throw new CesqlParseError(
        `attribute name ${token.text} may contain only letters and digits`,
        this.#source.span(token.offset, token.text.length),
      );
    }
    return token.text.toLowerCase();
  }

  /** Parses a nested construct, refusing nesting deeper than the tree may be. */
  #nested<T>(parse: () => T): T {
    if (++this.#depth > maxExpressionDepth) {
      const token = this.#peek();
      throw new CesqlParseError(
        `expression nests deeper than ${maxExpressionDepth} levels`,
        this.#source.span(token.offset, token.text.length),
      );
    }
    try {
      return parse();
    } finally {
      this.#depth--;
    }
  }

  #leaf(
    node: { kind: 'literal'; value: CesqlValue } | { kind: 'attribute' | 'exists'; name: string },
    first: Token,
    last: Token,
  ): Expression {
    return this.#node(node, [], first.offset, tokenEnd(last));
  }

  /** Builds a node over the text from `startOffset` to `endOffset`, keeping the tree within the depth bound. */
  #node(
    node: DistributiveOmit<Expression, 'span'>,
    children: readonly Expression[],
    startOffset: number,
    endOffset: number,
  ): Expression {
    const span = this.#source.span(startOffset, endOffset - startOffset);
    let depth = 1;
    for (const child of children) depth = Math.max(depth, 1 + (this.#depths.get(child) ?? 1));
    if (depth > maxExpressionDepth) {
      throw new CesqlParseError(`expression nests deeper than ${maxExpressionDepth} levels`, span);
    }
    const built = { ...node, span } as Expression;
    this.#depths.set(built, depth);
    return built;
  }

  #peek(ahead = 0): Token {
    return this.#tokens[this.#index + ahead] ?? this.#end;
  }

  #peekOperator(text: string): boolean {
    const token = this.#peek();
    return token.kind === 'operator' && token.text === text;
  }

  #peekKeyword(ahead = 0): string | undefined {
    const token = this.#peek(ahead);
    return token.kind === 'word' ? token.text.toUpperCase() : undefined;
  }

  #next(): Token {
    const token = this.#peek();
    if (token.kind !== 'end') this.#index++;
    return token;
  }

  #expect(operator: string, expected: string): Token {
    const token = this.#next();
    if (token.kind !== 'operator' || token.text !== operator) throw this.#unexpected(token, expected);
    return token;
  }

  #unexpected(token: Token, expected: string): CesqlParseError {
    const found = token.kind === 'end' ? 'the end of the expression' : `'${token.text}'`;
    return new CesqlParseError(
      `expected ${expected} but found ${found}`,
      this.#source.span(token.offset, token.text.length),
    );
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function start(expression: Expression): number {
  return expression.span.offset;
}

/** Where the last of `expressions` ends. */
function end(expressions: readonly Expression[]): number {
  const last = expressions[expressions.length - 1];
  return last === undefined ? 0 : last.span.offset + last.span.length;
}

function tokenEnd(token: Token): number {
  return token.offset + token.text.length;
}
