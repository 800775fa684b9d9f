/**
 * `eddy/cesql`: CloudEvents SQL (CESQL v1). `compile` parses and compiles an
 * expression once; the result evaluates events, as a value with the errors
 * raised (`evaluate`) or as a filter verdict (`matches`). See docs/filters.md.
 *
 * This module and everything under ./cesql/ use no Node built-in: the engine
 * runs in browsers too.
 */
import { compileTree } from './cesql/compile.js';
import { parse } from './cesql/parser.js';
import { createProgram, type CompiledExpression } from './cesql/program.js';
import { SourceText } from './cesql/source.js';

export type { CesqlValue } from './cesql/ast.js';
export type { StaticType } from './cesql/compiled.js';
export type { AttributeReader } from './cesql/context.js';
export { Located, type Utf8Attributes } from './cesql/utf8.js';
export { isDataPath } from './cesql/attributes.js';
export { DataPaths, eventDataJson, isJsonContentType } from './cesql/data.js';
export {
  CesqlCastError,
  CesqlError,
  cesqlErrorKinds,
  CesqlFunctionEvaluationError,
  CesqlGenericError,
  CesqlMathError,
  CesqlMissingAttributeError,
  CesqlMissingFunctionError,
  CesqlParseError,
  type CesqlErrorKind,
  type SourceSpan,
} from './cesql/errors.js';
export { maxExpressionDepth } from './cesql/parser.js';
export type { CloudEventAttributes, CompiledExpression, EvaluationResult } from './cesql/program.js';

/**
 * Compiles a CESQL expression. Throws CesqlParseError for text that is not
 * CESQL, and CesqlMissingFunctionError for a call no function definition
 * takes; both carry the span where the problem is.
 */
export function compile(expression: string): CompiledExpression {
  if (typeof expression !== 'string') throw new TypeError('cesql: the expression must be a string');
  return createProgram(expression, compileTree(parse(new SourceText(expression))));
}
