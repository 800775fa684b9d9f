/**
 * `ce-*` header values (HTTP binding 1.0.2 §3.1.3.2). Egress percent-encodes space, `"`, `%` and
 * everything outside printable ASCII, as UTF-8 with upper-case hex. Ingress first undoes RFC 7230
 * quoted strings (older senders used them), then one round of percent-decoding, and rejects byte
 * sequences that are not UTF-8. Raw characters outside printable ASCII are rejected too: HTTP
 * headers may only carry printable ASCII, and guessing their encoding could corrupt a value.
 */
import { decodeUtf8KeepingBom } from './utf8.js';

const NEEDS_ENCODING = /[^\x21\x23\x24\x26-\x7e]/;
const PRINTABLE_ASCII_OR_SPACE = /^[\x20-\x7e]*$/;
const PERCENT_ESCAPES: readonly string[] = Array.from(
  { length: 256 },
  (_, byte) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`,
);

/** `value` (an attribute's canonical string) as a header value. */
export function encodeHeaderValue(value: string): string {
  if (!NEEDS_ENCODING.test(value)) return value;
  let encoded = '';
  let copiedUpTo = 0;
  for (let i = 0; i < value.length; i++) {
    const unit = value.charCodeAt(i);
    if (unit >= 0x21 && unit <= 0x7e && unit !== 0x22 && unit !== 0x25) continue;
    encoded += value.slice(copiedUpTo, i);
    let codePoint = unit;
    if (unit >= 0xd800 && unit <= 0xdfff) {
      const next = value.charCodeAt(i + 1);
      if (unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        codePoint = 0x10000 + ((unit - 0xd800) << 10) + (next - 0xdc00);
        i++;
      } else {
        codePoint = 0xfffd; // as TextEncoder does; valid events have no unpaired surrogates
      }
    }
    encoded += percentEncodeUtf8(codePoint);
    copiedUpTo = i + 1;
  }
  return encoded + value.slice(copiedUpTo);
}

function percentEncodeUtf8(codePoint: number): string {
  const escape = (byte: number): string => PERCENT_ESCAPES[byte] ?? '';
  if (codePoint < 0x80) return escape(codePoint);
  if (codePoint < 0x800) return escape(0xc0 | (codePoint >> 6)) + escape(0x80 | (codePoint & 0x3f));
  if (codePoint < 0x10000) {
    return (
      escape(0xe0 | (codePoint >> 12)) +
      escape(0x80 | ((codePoint >> 6) & 0x3f)) +
      escape(0x80 | (codePoint & 0x3f))
    );
  }
  return (
    escape(0xf0 | (codePoint >> 18)) +
    escape(0x80 | ((codePoint >> 12) & 0x3f)) +
    escape(0x80 | ((codePoint >> 6) & 0x3f)) +
    escape(0x80 | (codePoint & 0x3f))
  );
}

/** The attribute value a header carries. Throws `SyntaxError` saying why it is not valid. */
export function decodeHeaderValue(raw: string): string {
  if (!PRINTABLE_ASCII_OR_SPACE.test(raw)) {
    throw new SyntaxError('has characters outside printable US-ASCII; they must be percent-encoded as UTF-8');
  }
  const unquoted = raw.includes('"') ? unquote(raw) : raw;
  return unquoted.includes('%') ? percentDecode(unquoted) : unquoted;
}

/** Removes RFC 7230 §3.2.6 quoted strings' quotes and backslash escapes. */
function unquote(raw: string): string {
  let result = '';
  let copiedUpTo = 0;
  let i = raw.indexOf('"');
  while (i !== -1) {
    result += raw.slice(copiedUpTo, i);
    i++;
    for (;;) {
      if (i >= raw.length) throw new SyntaxError('has a quoted string that is never closed');
      const char = raw[i];
      if (char === '"') break;
      if (char === '\\') i++;
      if (i >= raw.length) throw new SyntaxError('ends inside a backslash escape');
      result += raw[i];
      i++;
    }
    copiedUpTo = i + 1;
    i = raw.indexOf('"', copiedUpTo);
  }
  return result + raw.slice(copiedUpTo);
}

function hexDigit(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x57 : -1;
}

function percentDecode(value: string): string {
  // Each character is at most one byte here: the value is ASCII.
  const bytes = new Uint8Array(value.length);
  let length = 0;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code !== 0x25) {
      bytes[length++] = code;
      continue;
    }
    const high = hexDigit(value.charCodeAt(i + 1));
    const low = hexDigit(value.charCodeAt(i + 2));
    if (high < 0 || low < 0)
      throw new SyntaxError(`has a "%" at index ${i} that does not start a %XX escape`);
    bytes[length++] = (high << 4) | low;
    i += 2;
  }
  const decoded = decodeUtf8KeepingBom(bytes.subarray(0, length));
  if (decoded === undefined)
    throw new SyntaxError('has percent-encoded bytes that are not UTF-8 (e.g. an overlong form)');
  return decoded;
}
