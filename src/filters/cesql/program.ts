/**
 * A compiled expression, ready to run over any number of events. It owns one
 * evaluation context that every evaluation reuses, so evaluating allocates
 * nothing unless an error is collected; the price is that an evaluation must
 * not start another one of the same expression (an attribute reader that
 * tried would get an Error, which the engine reports as a GenericError).
 *
 * An expression that reads data paths (`data.items.0.sku`, data.ts) is a
 * DataReadingProgram, which reads plain events' data as well; the choice is
 * made once, at compile time, so every other expression runs as it would
 * without the extension.
 *
 * Over a reader with UTF-8 bytes (Eddy's stored events; utf8.ts) a program
 * runs a second tree, compiled at the first such evaluation, whose String
 * comparisons with literals test bytes (compile.ts).
 */
import type { CesqlValue } from './ast.js';
import { isDataPath, readOwnProperty } from './attributes.js';
import type { CompiledTree } from './compile.js';
import type { StaticType } from './compiled.js';
import { Context, type AttributeReader } from './context.js';
import { PlainEventReader } from './data.js';
import type { CesqlError } from './errors.js';

/** The spec's two outputs (§1): a value, and the errors raised while computing it. */
export interface EvaluationResult {
  readonly value: CesqlValue;
  readonly errors: readonly CesqlError[];
}

export type CloudEventAttributes = Readonly<Record<string, unknown>>;

export interface CompiledExpression {
  /** The expression text as given to `compile`. */
  readonly expression: string;
  /**
   * Attribute names the expression reads (EXISTS included), lower case, each
   * once; a data path is there as `data.` and its path as written (`data.items.0.sku`).
   */
  readonly attributes: readonly string[];
  /** The result's type when known at compile time; 'Any' when it is a bare attribute. */
  readonly resultType: StaticType;
  /**
   * Evaluates over the event's attributes (own properties; extensions side by
   * side with `id`, `type`…); data paths read `data` (parsed, JSON text or
   * UTF-8 bytes) when `datacontenttype` says JSON.
   */
  evaluate(event: CloudEventAttributes): EvaluationResult;
  /** Evaluates over any source, reading attributes through `read`. */
  evaluateWith<Source>(source: Source, read: AttributeReader<Source>): EvaluationResult;
  /** The filter verdict: true only when the value is Boolean true and no error was raised (§1.2). */
  matches(event: CloudEventAttributes): boolean;
  matchesWith<Source>(source: Source, read: AttributeReader<Source>): boolean;
}

const noErrors: readonly CesqlError[] = Object.freeze([]);

export function createProgram(expression: string, tree: CompiledTree): CompiledExpression {
  return tree.attributes.some(isDataPath)
    ? new DataReadingProgram(expression, tree)
    : new Program(expression, tree);
}

export class Program implements CompiledExpression {
  readonly expression: string;
  readonly attributes: readonly string[];
  readonly resultType: StaticType;
  readonly #run: (ctx: Context) => CesqlValue;
  readonly #tree: CompiledTree;
  /** `#tree.overUtf8().run`, once a reader with UTF-8 bytes has come. */
  #runOverUtf8: ((ctx: Context) => CesqlValue) | null = null;
  readonly #ctx = new Context();
  #busy = false;

  constructor(expression: string, tree: CompiledTree) {
    this.expression = expression;
    this.attributes = Object.freeze([...tree.attributes]);
    this.resultType = tree.root.type;
    this.#run = tree.root.run;
    this.#tree = tree;
  }

  evaluate(event: CloudEventAttributes): EvaluationResult {
    return this.evaluateWith(event, readOwnProperty);
  }

  evaluateWith<Source>(source: Source, read: AttributeReader<Source>): EvaluationResult {
    const ctx = this.#enter(source, read, true);
    try {
      const value = this.#runFor(ctx)(ctx);
      return { value, errors: ctx.errors.length === 0 ? noErrors : ctx.errors };
    } finally {
      this.#busy = false;
    }
  }

  matches(event: CloudEventAttributes): boolean {
    return this.matchesWith(event, readOwnProperty);
  }

  matchesWith<Source>(source: Source, read: AttributeReader<Source>): boolean {
    const ctx = this.#enter(source, read, false);
    try {
      return this.#runFor(ctx)(ctx) === true && ctx.failures === 0;
    } finally {
      this.#busy = false;
    }
  }

  /** The tree for the reader `ctx` was entered with. */
  #runFor(ctx: Context): (ctx: Context) => CesqlValue {
    if (ctx.utf8 === null) return this.#run;
    return (this.#runOverUtf8 ??= this.#tree.overUtf8().run);
  }

  #enter<Source>(source: Source, read: AttributeReader<Source>, collect: boolean): Context {
    if (this.#busy) throw new Error(`cesql: ${this.expression} is already being evaluated (re-entrant call)`);
    this.#busy = true;
    this.#ctx.reset(source, read as AttributeReader<unknown>, collect);
    return this.#ctx;
  }
}

/**
 * A program whose expression reads data paths: over plain events, each
 * evaluation parses the event's data at most once, however many paths it reads.
 */
class DataReadingProgram extends Program {
  readonly #reader: PlainEventReader;

  constructor(expression: string, tree: CompiledTree) {
    super(expression, tree);
    this.#reader = new PlainEventReader(this.attributes);
  }

  override evaluate(event: CloudEventAttributes): EvaluationResult {
    this.#reader.forget();
    return this.evaluateWith(event, this.#reader.read);
  }

  override matches(event: CloudEventAttributes): boolean {
    this.#reader.forget();
    return this.matchesWith(event, this.#reader.read);
  }
}
