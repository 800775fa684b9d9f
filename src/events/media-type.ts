/**
 * RFC 2046 media types (grammar from RFC 2045 §5.1): `type "/" subtype *(";" parameter)`, with
 * optional spaces around `;` as HTTP writes them. Tokens are RFC 2045 tokens: printable ASCII
 * except the tspecials `()<>@,;:\"/[]?=`.
 */

const TOKEN = "[!#$%&'*+\\-.0-9A-Z^_`a-z{|}~]+";
const QUOTED_STRING = '"(?:[\\x20\\x21\\x23-\\x5b\\x5d-\\x7e]|\\\\[\\x20-\\x7e])*"';
const MEDIA_TYPE = new RegExp(`^${TOKEN}/${TOKEN}(?: *; *${TOKEN}=(?:${TOKEN}|${QUOTED_STRING}))* *$`);

// JSON format §3.1.1: a media type, stripped of parameters, of the form `*/json` or `*/*+json`.
const JSON_MEDIA_TYPE = /^[^/;]+\/(?:[^/;]*\+)?json *(?:;|$)/i;
const TEXT_MEDIA_TYPE = /^text\/|^[^/;]+\/(?:[^/;]*\+)?xml *(?:;|$)/i;
const CHARSET = /; *charset="?([^";\s]*)/i;
const UTF8_COMPATIBLE_CHARSET = /^(?:utf-?8|us-ascii)$/i;

export function isMediaType(value: string): boolean {
  return MEDIA_TYPE.test(value);
}

/** Whether `datacontenttype` declares JSON; absent counts as `application/json`, as in the JSON format. */
export function declaresJson(datacontenttype: string | undefined): boolean {
  return datacontenttype === undefined || JSON_MEDIA_TYPE.test(datacontenttype);
}

/** The `charset` parameter's value, if the media type has one. */
export function charsetOf(mediaType: string): string | undefined {
  return CHARSET.exec(mediaType)?.[1];
}

/** Whether a charset name means the bytes are (a subset of) UTF-8. */
export function isUtf8Charset(charset: string): boolean {
  return UTF8_COMPATIBLE_CHARSET.test(charset);
}

/**
 * Whether data of this type is text we may carry as a JSON string: `text/*`, XML, or any type
 * with a charset parameter (only textual types have one) — provided the charset is UTF-8 or
 * US-ASCII, so the bytes need no transcoding.
 */
export function declaresUtf8Text(datacontenttype: string): boolean {
  const charset = charsetOf(datacontenttype);
  return charset === undefined ? TEXT_MEDIA_TYPE.test(datacontenttype) : isUtf8Charset(charset);
}

/** `type/subtype` in lower case, without parameters or surrounding spaces. */
export function essenceOf(mediaType: string): string {
  const semicolon = mediaType.indexOf(';');
  return (semicolon === -1 ? mediaType : mediaType.slice(0, semicolon)).trim().toLowerCase();
}
