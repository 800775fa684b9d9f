/**
 * Reading attributes through an AttributeReader (spec §3.2, §3.4.4), so that
 * one compiled expression runs over a plain object or over a reader of the
 * stored event bytes alike.
 */
import type { Compiled } from './compiled.js';
import { constant } from './compiled.js';
import type { Context } from './context.js';
import type { SourceSpan } from './errors.js';
import { Located, type BytesTest, type Utf8Attributes } from './utf8.js';
import { fromAttribute } from './values.js';

/** Every valid CloudEvent has these, so `EXISTS` of them is true without looking (§3.4.4). */
const requiredAttributes = new Set(['id', 'source', 'specversion', 'type']);

/**
 * CESQL addresses context attributes and extensions only (§1); `data` is
 * neither. Eddy's data paths (`data.items.0.sku`, see data.ts) are names the
 * reader answers like any other attribute's.
 */
const dataAttribute = 'data';
export const dataPathPrefix = 'data.';

/** Whether an attribute name, as the parser produces them, is a data path. */
export function isDataPath(name: string): boolean {
  return name.startsWith(dataPathPrefix);
}

/** Reads an own property of a plain object; inherited ones (`constructor`, methods of a class) are not attributes. */
export function readOwnProperty(event: Readonly<Record<string, unknown>>, name: string): unknown {
  return Object.hasOwn(event, name) ? event[name] : undefined;
}

/**
 * The raw value from the reader. A reader that throws (say, over corrupt
 * bytes) raises a GenericError instead of escaping, so a filter fails closed.
 */
function readRaw(ctx: Context, name: string, span: SourceSpan): unknown {
  try {
    return ctx.read(ctx.source, name);
  } catch (error) {
    ctx.fail('generic', span, `reading attribute ${name} failed`, String(error));
    return undefined;
  }
}

/** A missing attribute's value: false (the zero value of the assumed Boolean), and a MissingAttributeError. */
function missing(ctx: Context, name: string, span: SourceSpan): false {
  ctx.fail('missingAttribute', span, 'missing attribute', name);
  return false;
}

/** An attribute's value; when it is missing, false and a MissingAttributeError. */
export function attribute(name: string, span: SourceSpan): Compiled {
  const readable = name !== dataAttribute;
  return {
    type: 'Any',
    span,
    // Data paths are the reader's own business, never shown as bytes.
    ...(readable && !isDataPath(name) ? { attribute: name } : {}),
    run: (ctx) => {
      const before = ctx.failures;
      const value = readable ? fromAttribute(readRaw(ctx, name, span)) : undefined;
      if (value !== undefined) return value;
      // A reader that threw has been reported already; the attribute is not also "missing".
      return ctx.failures === before ? missing(ctx, name, span) : false;
    },
  };
}

/**
 * What a UTF-8 reader finds for `name`; `other` when it throws, so that the
 * caller takes the reading path, which reports the failure.
 */
function locate(utf8: Utf8Attributes<unknown>, ctx: Context, name: string): Located {
  try {
    return utf8.locate(ctx.source, name);
  } catch {
    return Located.other;
  }
}

/**
 * `generic`, a Boolean operator over the attribute `operand` reads, as
 * compiled for any reader, with a shortcut for readers that show String
 * values as UTF-8 bytes: over a String value the result is `test` of its
 * bytes. The callers build `test` to give exactly what `generic` gives for a
 * String; and `generic` gives false and a MissingAttributeError for a
 * missing operand, as the shortcut does. Values of other types, and readers
 * without bytes, take `generic`.
 */
export function overUtf8(operand: Compiled, test: BytesTest, generic: Compiled): Compiled {
  const name = operand.attribute;
  if (name === undefined) return generic;
  return {
    type: generic.type,
    span: generic.span,
    run: (ctx) => {
      const utf8 = ctx.utf8;
      if (utf8 === null) return generic.run(ctx);
      switch (locate(utf8, ctx, name)) {
        case Located.string:
          return test(utf8.bytes, utf8.start, utf8.end);
        case Located.missing:
          return missing(ctx, name, operand.span);
        default:
          return generic.run(ctx);
      }
    },
  };
}

export function exists(name: string, span: SourceSpan): Compiled {
  if (requiredAttributes.has(name)) return constant(true, span);
  if (name === dataAttribute) return constant(false, span);
  return { type: 'Boolean', span, run: (ctx) => fromAttribute(readRaw(ctx, name, span)) !== undefined };
}

/**
 * `exists` for readers with UTF-8 bytes (compile.ts), given the node as
 * compiled for any reader: whether the attribute is there needs no value
 * read, unless the reader finds one of another type than String.
 */
export function existsOverUtf8(name: string, generic: Compiled): Compiled {
  if (generic.constant !== undefined || isDataPath(name)) return generic;
  return {
    type: 'Boolean',
    span: generic.span,
    run: (ctx) => {
      const utf8 = ctx.utf8;
      const located = utf8 === null ? Located.other : locate(utf8, ctx, name);
      return located === Located.other ? generic.run(ctx) : located === Located.string;
    },
  };
}
