/**
 * The CESQL Technology Compatibility Kit, read in place from the shared
 * conformance folder: one case per TCK test, checking the value and the kinds
 * of the errors exactly. An expression that does not compile counts as the
 * value false with the compile error, as the TCK's expectations assume.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CesqlError, compile, type CesqlErrorKind, type EvaluationResult } from '../../src/filters/cesql.js';

interface TckCase {
  readonly name: string;
  readonly expression: string;
  readonly result?: boolean | number | string;
  readonly error?: CesqlErrorKind;
  readonly event?: Record<string, unknown>;
  readonly eventOverrides?: Record<string, unknown>;
}

interface TckFile {
  readonly name: string;
  readonly tests: readonly TckCase[];
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tckDir = path.resolve(repoRoot, '../shared/conformance/cesql-tck');

/** "Any valid event will do" where a case gives none. */
const anyValidEvent = {
  specversion: '1.0',
  id: 'tck-1',
  source: 'https://example.com/tck',
  type: 'tck.event',
};

function run(test: TckCase): EvaluationResult {
  const event = { ...(test.event ?? anyValidEvent), ...test.eventOverrides };
  try {
    return compile(test.expression).evaluate(event);
  } catch (error) {
    if (!(error instanceof CesqlError)) throw error;
    return { value: false, errors: [error] };
  }
}

const files = fs
  .readdirSync(tckDir)
  .filter((name) => name.endsWith('.yaml'))
  .sort();

describe('filters > cesql > TCK', () => {
  it('finds the TCK files', () => {
    expect(files.length).toBeGreaterThanOrEqual(18);
  });

  for (const file of files) {
    const text = fs.readFileSync(path.join(tckDir, file), 'utf8');
    const suite = parse(text) as TckFile;
    // Expressions are CESQL source: `TRUE` or `-10` must stay text, not become YAML booleans or numbers.
    const sources = parse(text, { schema: 'failsafe' }) as TckFile;
    const tests = suite.tests.map((test, i) => ({ ...test, expression: sources.tests[i]!.expression }));
    describe(`${file}: ${suite.name}`, () => {
      it.each(tests.map((test) => [test.name, test] as const))('%s', (_name, test) => {
        const { value, errors } = run(test);
        if (test.result !== undefined) expect(value).toBe(test.result);
        expect(errors.map((error) => error.kind)).toEqual(test.error === undefined ? [] : [test.error]);
      });
    });
  }
});
