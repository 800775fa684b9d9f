/**
 * Reading attributes through an AttributeReader (spec §3.2, §3.4.4), so that
 * one compiled expression runs over a plain object or over a reader of the
 * stored event bytes alike.
 */
import type { Compiled } from './compiled.js';
import { constant } from './compiled.js';
import type { Context } from './context.js';
import type { SourceSpan } from './errors.js';
import { fromAttribute } from './values.js';

/** Every valid CloudEvent has these, so `EXISTS` of them is true without looking (§3.4.4). */
const requiredAttributes = new Set(['id', 'source', 'specversion', 'type']);

/**
 * CESQL addresses context attributes and extensions only (§1); `data` is
 * neither. Eddy's data paths (`data.items.0.sku`, see data.ts) are names the
 * reader answers like any other attribute's.
 */
const dataAttribute = 'data';

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

/** An attribute's value; when it is missing, false (the zero value of the assumed Boolean) and a MissingAttributeError. */
export function attribute(name: string, span: SourceSpan): Compiled {
  const readable = name !== dataAttribute;
  return {
    type: 'Any',
    span,
    run: (ctx) => {
      const before = ctx.failures;
      const value = readable ? fromAttribute(readRaw(ctx, name, span)) : undefined;
      if (value !== undefined) return value;
      // A reader that threw has been reported already; the attribute is not also "missing".
      if (ctx.failures === before) ctx.fail('missingAttribute', span, 'missing attribute', name);
      return false;
    },
  };
}

export function exists(name: string, span: SourceSpan): Compiled {
  if (requiredAttributes.has(name)) return constant(true, span);
  if (name === dataAttribute) return constant(false, span);
  return { type: 'Boolean', span, run: (ctx) => fromAttribute(readRaw(ctx, name, span)) !== undefined };
}
