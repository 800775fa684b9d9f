/**
 * The CESQL Technology Compatibility Kit (test/helpers/cesql-tck.ts): one case
 * per TCK test, checking the value and the kinds of the errors exactly. An
 * expression that does not compile counts as the value false with the compile
 * error, as the TCK's expectations assume. test/broker/stored-attributes.test.ts
 * runs it over stored events too.
 */
import { describe, expect, it } from 'vitest';
import { CesqlError, compile, type EvaluationResult } from '../../src/filters/cesql.js';
import { tckEvent, tckSuites, type TckCase } from '../helpers/cesql-tck.js';

function run(test: TckCase): EvaluationResult {
  try {
    return compile(test.expression).evaluate(tckEvent(test));
  } catch (error) {
    if (!(error instanceof CesqlError)) throw error;
    return { value: false, errors: [error] };
  }
}

const suites = tckSuites();

describe('filters > cesql > TCK', () => {
  it('finds the TCK files', () => {
    expect(suites.length).toBeGreaterThanOrEqual(18);
  });

  for (const { file, name, tests } of suites) {
    describe(`${file}: ${name}`, () => {
      it.each(tests.map((test) => [test.name, test] as const))('%s', (_name, test) => {
        const { value, errors } = run(test);
        if (test.result !== undefined) expect(value).toBe(test.result);
        expect(errors.map((error) => error.kind)).toEqual(test.error === undefined ? [] : [test.error]);
      });
    });
  }
});
