/**
 * The state of one evaluation: where attributes come from, and the errors
 * raised so far.
 *
 * Error contract inside the engine (what makes results match the TCK): a node
 * whose operand raised an error returns the zero value of its own return type
 * without computing anything; a node that raises an error itself (a failed
 * cast, division by zero, a bad function argument) still returns the value the
 * spec gives it. Since every error therefore travels straight up the tree,
 * "did my operand fail?" is `ctx.failures !== 0` right after evaluating it.
 */
import type { CesqlValue } from './ast.js';
import { createCesqlError, type CesqlError, type CesqlErrorKind, type SourceSpan } from './errors.js';
import type { Utf8Attributes } from './utf8.js';

/**
 * Reads one context attribute or extension of an event by its (lower-case)
 * name; `undefined` or `null` when the event does not have it. Values other
 * than strings, booleans and 32-bit integers are seen by their String form.
 * A name starting with `data.` is a data path (Eddy's extension, data.ts): the
 * value at that path in the event's JSON data, `undefined` when there is none.
 */
export interface AttributeReader<Source> {
  (source: Source, name: string): unknown;
  /**
   * Set by readers of events held as UTF-8 bytes (Eddy's stored event
   * blocks): shows a String attribute's bytes in place, so that comparing it
   * with a literal needs no string decoded (utf8.ts). Anything it cannot
   * answer goes through the reader itself.
   */
  readonly utf8?: Utf8Attributes<Source>;
}

export class Context {
  source: unknown = undefined;
  read: AttributeReader<unknown> = () => undefined;
  /** `read.utf8`, or null: looked up once per evaluation rather than per attribute. */
  utf8: Utf8Attributes<unknown> | null = null;
  /** Errors raised in this evaluation, counted even when not collected. */
  failures = 0;
  /**
   * Whether to build error objects. A filter only needs to know that an error
   * happened, and events lacking an attribute are common enough that building
   * an error for each would be the costliest part of not matching them.
   */
  collect = false;
  errors: CesqlError[] = [];

  reset(source: unknown, read: AttributeReader<unknown>, collect: boolean): void {
    this.source = source;
    this.read = read;
    this.utf8 = read.utf8 ?? null;
    this.failures = 0;
    this.collect = collect;
    if (this.errors.length !== 0) this.errors = [];
  }

  /** Records an error; the message is only built when errors are collected. */
  fail(kind: CesqlErrorKind, span: SourceSpan, reason: string, subject?: CesqlValue): void {
    this.failures++;
    if (this.collect) {
      const detail = subject === undefined ? reason : `${reason}: ${JSON.stringify(subject)}`;
      this.errors.push(createCesqlError(kind, detail, span));
    }
  }
}
