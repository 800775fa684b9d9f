/**
 * CloudEvents 1.0.2 validation of the model. Input may come from untrusted JSON or from plain
 * JavaScript, so every runtime type is checked too. Each attribute gets at most one issue (the
 * first rule it breaks, cheapest check first, so a huge value is rejected by length before any
 * regex reads it); every attribute is checked, so one call reports everything wrong.
 */
import { Extension, isTraceparent } from './extensions.js';
import { isMediaType } from './media-type.js';
import { timestampProblem } from './timestamp.js';
import { ValidationRule } from './types.js';
import type { ParseOptions, ValidationIssue, ValidationLimits } from './types.js';
import { isAbsoluteUri, isUriReference } from './uri.js';

/**
 * Defaults of every limit. Values and data stay at or above 64 KiB because the spec says
 * intermediaries MUST forward events of 64 KB or less; the extension count is the one deliberate
 * bound below what such an event could hold, since each extension costs a header and a property.
 */
export const DEFAULT_LIMITS = {
  attributeValueBytesMax: 65_536,
  extensionCountMax: 128,
  dataBytesMax: 1_048_576,
  batchEventCountMax: 1000,
} as const satisfies Required<ParseOptions>;

const CONTEXT_ATTRIBUTES: ReadonlySet<string> = new Set([
  'specversion',
  'id',
  'source',
  'type',
  'subject',
  'time',
  'datacontenttype',
  'dataschema',
]);
// The JSON format's data members share the object with attributes, so no extension may take them.
const RESERVED_NAMES: ReadonlySet<string> = new Set([...CONTEXT_ATTRIBUTES, 'data', 'data_base64']);
const MODEL_FIELDS: ReadonlySet<string> = new Set([...CONTEXT_ATTRIBUTES, 'extensions', 'data']);
const ATTRIBUTE_NAME = /^[a-z0-9]+$/;
const INT32_MIN = -2_147_483_648;
const INT32_MAX = 2_147_483_647;

/**
 * Spec "String": no control characters (U+0000–U+001F, U+007F–U+009F), no noncharacters
 * (U+FDD0–U+FDEF and the last two code points of each of the 17 planes), no unpaired surrogates.
 * In `u` mode a well-formed pair is one code point outside U+D800–U+DFFF, so only lone
 * surrogates match that range.
 */
const FORBIDDEN_CHARACTER = ((): RegExp => {
  let noncharacters = '\\u{fdd0}-\\u{fdef}';
  for (let plane = 0; plane <= 0x10; plane++) {
    const last = plane * 0x10000 + 0xffff;
    noncharacters += `\\u{${(last - 1).toString(16)}}\\u{${last.toString(16)}}`;
  }
  return new RegExp(`[\\u{0}-\\u{1f}\\u{7f}-\\u{9f}\\u{d800}-\\u{dfff}${noncharacters}]`, 'u');
})();

/**
 * The last value of each of these attributes that passed every check, under
 * `lastValidBytesMax`: events of one stream repeat their source, type and
 * content type (and, many per millisecond, their time), so the checks run once
 * per distinct value instead of once per event. Validation is a pure function
 * of the value and the limit, so a remembered verdict cannot go stale.
 */
const lastValid = new Map<string, string>();
let lastValidBytesMax = -1;

/** The syntax a context attribute's value must have beyond being a String, and what to say when it has not. */
interface Syntax {
  readonly rule: ValidationRule;
  readonly problem: (value: string) => string | undefined;
}

const SYNTAX = {
  source: {
    rule: ValidationRule.URI_REFERENCE,
    problem: (value) =>
      isUriReference(value)
        ? undefined
        : 'must be a URI-reference (RFC 3986), such as https://example.com/orders or /sensors/tn-1',
  },
  time: { rule: ValidationRule.RFC3339, problem: timestampProblem },
  datacontenttype: {
    rule: ValidationRule.MEDIA_TYPE,
    problem: (value) =>
      isMediaType(value)
        ? undefined
        : 'must be a media type (RFC 2046) such as application/json or text/plain; charset=utf-8',
  },
  dataschema: {
    rule: ValidationRule.ABSOLUTE_URI,
    problem: (value) =>
      isAbsoluteUri(value)
        ? undefined
        : 'must be an absolute URI (RFC 3986) such as https://example.com/schemas/order.json',
  },
} as const satisfies Record<string, Syntax>;

/** Checks one context attribute (String rules, then its syntax) unless it repeats the last valid value. */
function checkAttribute(
  issues: ValidationIssue[],
  fields: Readonly<Record<string, unknown>>,
  name: string,
  isRequired: boolean,
  bytesMax: number,
  syntax: Syntax | null,
): void {
  const given = fields[name];
  if (typeof given === 'string' && lastValid.get(name) === given) return;
  const value = present(issues, fields, name, bytesMax, isRequired);
  if (value === undefined) return;
  const problem = syntax?.problem(value);
  if (syntax !== null && problem !== undefined) {
    issues.push({ attribute: name, rule: syntax.rule, message: problem });
    return;
  }
  lastValid.set(name, value);
}

/**
 * Puts a parsed attribute where the model keeps it: a context attribute on the
 * event, anything else among the extensions once its name passes (checked
 * before copying, so a name like `__proto__` is never assigned). Returns the
 * extensions record, created on first use.
 */
export function placeAttribute(
  draft: Record<string, unknown>,
  extensions: Record<string, unknown> | undefined,
  name: string,
  value: unknown,
  issues: ValidationIssue[],
): Record<string, unknown> | undefined {
  if (isContextAttribute(name)) {
    draft[name] = value;
    return extensions;
  }
  const nameIssue = extensionNameIssue(name);
  if (nameIssue !== undefined) {
    issues.push(nameIssue);
    return extensions;
  }
  const placed = extensions ?? {};
  placed[name] = value;
  return placed;
}

/** Whether `name` is one of the spec's context attributes (`id`, `source`, …). */
export function isContextAttribute(name: string): boolean {
  return CONTEXT_ATTRIBUTES.has(name);
}

/** The issue with `name` as an extension name, if any. Parsers check before copying a name. */
export function extensionNameIssue(name: string): ValidationIssue | undefined {
  if (RESERVED_NAMES.has(name)) {
    return {
      attribute: name,
      rule: ValidationRule.RESERVED_NAME,
      message: `is reserved (${CONTEXT_ATTRIBUTES.has(name) ? 'a context attribute' : 'the JSON data member'}) and cannot name an extension`,
    };
  }
  if (!ATTRIBUTE_NAME.test(name)) {
    return {
      attribute: name,
      rule: ValidationRule.ATTRIBUTE_NAME,
      message: 'is not a valid attribute name: only lower-case ASCII letters and digits are allowed',
    };
  }
  return undefined;
}

/**
 * Every rule `event` breaks; empty when it is a valid CloudEvent. Throws `TypeError` only when
 * `event` is not an object at all (a programming error, not an invalid event).
 */
export function validateEvent(event: unknown, limits: ValidationLimits = {}): ValidationIssue[] {
  if (typeof event !== 'object' || event === null) {
    throw new TypeError(`validateEvent expects an event object, got ${describe(event)}`);
  }
  return eventIssues(event as Readonly<Record<string, unknown>>, limits, false, false);
}

/**
 * `validateEvent` of an event `createEvent` has just built: it holds model fields only, and an
 * id it made itself (a UUID) when `idMadeHere`, so neither needs checking — on the SDK's publish
 * path that was a fifth of the cost of making an event.
 */
export function createdEventIssues(
  event: Readonly<Record<string, unknown>>,
  limits: ValidationLimits,
  idMadeHere: boolean,
): ValidationIssue[] {
  return eventIssues(event, limits, idMadeHere, true);
}

function eventIssues(
  fields: Readonly<Record<string, unknown>>,
  limits: ValidationLimits,
  idValid: boolean,
  modelFieldsOnly: boolean,
): ValidationIssue[] {
  const bytesMax = limits.attributeValueBytesMax ?? DEFAULT_LIMITS.attributeValueBytesMax;
  const issues: ValidationIssue[] = [];

  const specversion = fields['specversion'];
  if (specversion === undefined || specversion === null) {
    issues.push({ attribute: 'specversion', rule: ValidationRule.REQUIRED, message: 'is required' });
  } else if (typeof specversion !== 'string') {
    issues.push(typeIssue('specversion', specversion));
  } else if (specversion !== '1.0') {
    issues.push({
      attribute: 'specversion',
      rule: ValidationRule.SPECVERSION,
      message: `is ${quote(specversion)}; only 1.0 is supported`,
    });
  }
  if (!idValid) present(issues, fields, 'id', bytesMax, true);
  if (lastValidBytesMax !== bytesMax) {
    lastValid.clear();
    lastValidBytesMax = bytesMax;
  }
  checkAttribute(issues, fields, 'source', true, bytesMax, SYNTAX.source);
  checkAttribute(issues, fields, 'type', true, bytesMax, null);
  present(issues, fields, 'subject', bytesMax, false);
  checkAttribute(issues, fields, 'time', false, bytesMax, SYNTAX.time);
  checkAttribute(issues, fields, 'datacontenttype', false, bytesMax, SYNTAX.datacontenttype);
  checkAttribute(issues, fields, 'dataschema', false, bytesMax, SYNTAX.dataschema);
  const extensions = fields['extensions'];
  if (extensions !== undefined) {
    checkExtensions(
      issues,
      extensions,
      bytesMax,
      limits.extensionCountMax ?? DEFAULT_LIMITS.extensionCountMax,
    );
  }
  const data = fields['data'];
  if (data !== undefined) {
    const dataBytesMax = limits.dataBytesMax ?? DEFAULT_LIMITS.dataBytesMax;
    if (!(data instanceof Uint8Array)) {
      issues.push({
        attribute: 'data',
        rule: ValidationRule.VALUE_TYPE,
        message: `must be a Uint8Array, not ${describe(data)}`,
      });
    } else if (data.byteLength > dataBytesMax) {
      issues.push({
        attribute: 'data',
        rule: ValidationRule.TOO_LARGE,
        message: `is ${data.byteLength} bytes; at most ${dataBytesMax} are allowed`,
      });
    }
  }
  if (modelFieldsOnly) return issues;
  for (const field in fields) {
    if (!MODEL_FIELDS.has(field)) {
      issues.push({
        attribute: field,
        rule: ValidationRule.UNKNOWN_ATTRIBUTE,
        message: 'is not a CloudEvent field; extension attributes belong in `extensions`',
      });
    }
  }
  return issues;
}

/** The value when it is a well-formed String; a required one that is missing is an issue too. */
function present(
  issues: ValidationIssue[],
  fields: Readonly<Record<string, unknown>>,
  name: string,
  bytesMax: number,
  isRequired: boolean,
): string | undefined {
  const value = fields[name];
  if (value === undefined || (isRequired && value === null)) {
    if (isRequired) issues.push({ attribute: name, rule: ValidationRule.REQUIRED, message: 'is required' });
    return undefined;
  }
  return checkString(issues, name, value, bytesMax, false) ? (value as string) : undefined;
}

/** The rules every String shares; false (with an issue, unless an allowed empty string) otherwise. */
function checkString(
  issues: ValidationIssue[],
  attribute: string,
  value: unknown,
  bytesMax: number,
  emptyAllowed: boolean,
): boolean {
  if (typeof value !== 'string') {
    issues.push(typeIssue(attribute, value));
    return false;
  }
  if (value.length === 0) {
    if (!emptyAllowed)
      issues.push({ attribute, rule: ValidationRule.NON_EMPTY, message: 'must be a non-empty string' });
    return emptyAllowed;
  }
  // Printable ASCII (ids, most sources and types) has no forbidden character and one byte per unit.
  if (value.length <= bytesMax && isPrintableAscii(value)) return true;
  if (exceedsUtf8Bytes(value, bytesMax)) {
    issues.push({
      attribute,
      rule: ValidationRule.TOO_LONG,
      message: `must be at most ${bytesMax} bytes of UTF-8`,
    });
    return false;
  }
  const at = value.search(FORBIDDEN_CHARACTER);
  if (at !== -1) {
    issues.push({
      attribute,
      rule: ValidationRule.FORBIDDEN_CHARACTER,
      message: `has ${characterName(value, at)} at index ${at}; Strings must not contain control characters, noncharacters or unpaired surrogates`,
    });
    return false;
  }
  return true;
}

function checkExtensions(
  issues: ValidationIssue[],
  value: unknown,
  bytesMax: number,
  countMax: number,
): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    issues.push({
      attribute: 'extensions',
      rule: ValidationRule.VALUE_TYPE,
      message: `must be an object of extension attributes, not ${describe(value)}`,
    });
    return;
  }
  const extensions = value as Readonly<Record<string, unknown>>;
  let count = 0;
  for (const name in extensions) {
    if (!Object.hasOwn(extensions, name)) continue;
    // Stop here: a flood of extensions must not cost one check each.
    if (++count > countMax) {
      issues.push({
        attribute: 'extensions',
        rule: ValidationRule.TOO_MANY_EXTENSIONS,
        message: `must number at most ${countMax}`,
      });
      return;
    }
    const nameIssue = extensionNameIssue(name);
    if (nameIssue === undefined) {
      checkExtensionValue(issues, name, extensions[name], bytesMax);
    } else {
      issues.push(nameIssue);
    }
  }
}

function checkExtensionValue(
  issues: ValidationIssue[],
  name: string,
  value: unknown,
  bytesMax: number,
): void {
  if (
    name === Extension.CORRELATION_ID ||
    name === Extension.CAUSATION_ID ||
    name === Extension.TRACEPARENT
  ) {
    if (checkString(issues, name, value, bytesMax, false) && name === Extension.TRACEPARENT) {
      if (!isTraceparent(value as string)) {
        issues.push({
          attribute: name,
          rule: ValidationRule.TRACEPARENT,
          message:
            'must be a W3C traceparent such as 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        });
      }
    }
    return;
  }
  if (name === Extension.DELIVER_AT) {
    const problem = checkString(issues, name, value, bytesMax, true)
      ? timestampProblem(value as string)
      : undefined;
    if (problem !== undefined)
      issues.push({ attribute: name, rule: ValidationRule.RFC3339, message: problem });
    return;
  }
  switch (typeof value) {
    case 'string':
      checkString(issues, name, value, bytesMax, true);
      return;
    case 'number':
      if (!Number.isInteger(value) || value < INT32_MIN || value > INT32_MAX) {
        issues.push({
          attribute: name,
          rule: ValidationRule.INT32,
          message: `is ${value}; an Integer must be a whole number from ${INT32_MIN} to ${INT32_MAX}`,
        });
      }
      return;
    case 'boolean':
      return;
  }
  if (!(value instanceof Uint8Array)) {
    issues.push({
      attribute: name,
      rule: ValidationRule.VALUE_TYPE,
      message: `has an unsupported type (${describe(value)}); extension values are strings, 32-bit integers, booleans or binary`,
    });
  } else if (value.byteLength > bytesMax) {
    issues.push({
      attribute: name,
      rule: ValidationRule.TOO_LONG,
      message: `must be at most ${bytesMax} bytes`,
    });
  }
}

/**
 * Whether `value` takes more than `bytesMax` bytes as UTF-8, counted without encoding it; most
 * strings are settled by their length alone (UTF-8 takes 1 to 3 bytes per UTF-16 unit).
 */
function isPrintableAscii(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    if (unit < 0x20 || unit > 0x7e) return false;
  }
  return true;
}

function exceedsUtf8Bytes(value: string, bytesMax: number): boolean {
  if (value.length > bytesMax) return true;
  if (value.length * 3 <= bytesMax) return false;
  let bytes = 0;
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    // A surrogate pair is 4 bytes, so 2 per surrogate.
    bytes += unit < 0x80 ? 1 : unit < 0x800 || (unit >= 0xd800 && unit <= 0xdfff) ? 2 : 3;
  }
  return bytes > bytesMax;
}

function typeIssue(attribute: string, value: unknown): ValidationIssue {
  return { attribute, rule: ValidationRule.VALUE_TYPE, message: `must be a string, not ${describe(value)}` };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Uint8Array) return 'binary';
  const type = typeof value;
  return type === 'object' ? 'an object' : `a ${type}`;
}

function characterName(value: string, index: number): string {
  const codePoint = value.codePointAt(index) ?? 0;
  const kind =
    codePoint <= 0x9f
      ? 'a control character'
      : codePoint >= 0xd800 && codePoint <= 0xdfff
        ? 'an unpaired surrogate'
        : 'a noncharacter';
  return `U+${codePoint.toString(16).toUpperCase().padStart(4, '0')} (${kind})`;
}

function quote(value: string): string {
  return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
}
