/**
 * The error kinds of CESQL v1 (spec §3.3), one class each so that callers can
 * branch with `instanceof` or on `kind` without reading messages. The kind
 * strings are the ones the conformance TCK uses.
 */
export const cesqlErrorKinds = [
  'parse',
  'math',
  'cast',
  'missingFunction',
  'functionEvaluation',
  'missingAttribute',
  'generic',
] as const;

export type CesqlErrorKind = (typeof cesqlErrorKinds)[number];

/** Where in the expression text an error arose; line and column count from 1. */
export interface SourceSpan {
  readonly offset: number;
  readonly length: number;
  readonly line: number;
  readonly column: number;
}

export abstract class CesqlError extends Error {
  abstract readonly kind: CesqlErrorKind;
  /** The part of the expression that raised the error. */
  readonly span: SourceSpan;
  /** The message without the position suffix, for callers that show the position themselves. */
  readonly reason: string;

  constructor(reason: string, span: SourceSpan) {
    super(`${reason} (line ${span.line}, column ${span.column})`);
    this.reason = reason;
    this.span = span;
  }
}

export class CesqlParseError extends CesqlError {
  readonly kind = 'parse';
  override readonly name = 'CesqlParseError';
}

export class CesqlMathError extends CesqlError {
  readonly kind = 'math';
  override readonly name = 'CesqlMathError';
}

export class CesqlCastError extends CesqlError {
  readonly kind = 'cast';
  override readonly name = 'CesqlCastError';
}

export class CesqlMissingFunctionError extends CesqlError {
  readonly kind = 'missingFunction';
  override readonly name = 'CesqlMissingFunctionError';
}

export class CesqlFunctionEvaluationError extends CesqlError {
  readonly kind = 'functionEvaluation';
  override readonly name = 'CesqlFunctionEvaluationError';
}

export class CesqlMissingAttributeError extends CesqlError {
  readonly kind = 'missingAttribute';
  override readonly name = 'CesqlMissingAttributeError';
}

export class CesqlGenericError extends CesqlError {
  readonly kind = 'generic';
  override readonly name = 'CesqlGenericError';
}

const classes: Readonly<Record<CesqlErrorKind, new (reason: string, span: SourceSpan) => CesqlError>> = {
  parse: CesqlParseError,
  math: CesqlMathError,
  cast: CesqlCastError,
  missingFunction: CesqlMissingFunctionError,
  functionEvaluation: CesqlFunctionEvaluationError,
  missingAttribute: CesqlMissingAttributeError,
  generic: CesqlGenericError,
};

export function createCesqlError(kind: CesqlErrorKind, reason: string, span: SourceSpan): CesqlError {
  return new classes[kind](reason, span);
}
