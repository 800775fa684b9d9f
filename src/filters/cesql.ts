/**
 * `eddy/cesql` entry: CloudEvents SQL. The engine arrives with issue #5; until
 * then `compile` says so instead of pretending to work.
 */
export interface CompiledExpression {
  evaluate(event: Readonly<Record<string, unknown>>): unknown;
}

export function compile(expression: string): CompiledExpression {
  throw new Error(`eddy cesql: not implemented yet (issue #5); cannot compile ${JSON.stringify(expression)}`);
}
