/**
 * The CESQL Technology Compatibility Kit, read in place from the shared
 * conformance folder, for the runs over plain events (test/filters) and over
 * stored events (test/broker).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { CesqlErrorKind } from '../../src/filters/cesql.js';

export interface TckCase {
  readonly name: string;
  readonly expression: string;
  readonly result?: boolean | number | string;
  readonly error?: CesqlErrorKind;
  readonly event?: Record<string, unknown>;
  readonly eventOverrides?: Record<string, unknown>;
}

export interface TckSuite {
  readonly file: string;
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

/** The event a case evaluates over. */
export function tckEvent(test: TckCase): Record<string, unknown> {
  return { ...(test.event ?? anyValidEvent), ...test.eventOverrides };
}

export function tckSuites(): TckSuite[] {
  return fs
    .readdirSync(tckDir)
    .filter((name) => name.endsWith('.yaml'))
    .sort()
    .map((file) => {
      const text = fs.readFileSync(path.join(tckDir, file), 'utf8');
      const suite = parse(text) as Omit<TckSuite, 'file'>;
      // Expressions are CESQL source: `TRUE` or `-10` must stay text, not become YAML booleans or numbers.
      const sources = parse(text, { schema: 'failsafe' }) as Omit<TckSuite, 'file'>;
      const tests = suite.tests.map((test, i) => ({ ...test, expression: sources.tests[i]!.expression }));
      return { file, name: suite.name, tests };
    });
}
