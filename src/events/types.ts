/**
 * Contracts of the CloudEvents layer (spec 1.0.2). Everything here is browser-safe: the client
 * SDK imports this folder, so no Node built-in and no `Buffer` — bytes are `Uint8Array`.
 */

/**
 * An extension attribute value, by CloudEvents type: `string` for String, URI, URI-reference and
 * Timestamp (as every event format carries them), `number` for Integer (a 32-bit signed whole
 * number), `boolean` for Boolean, `Uint8Array` for Binary.
 */
export type ExtensionValue = string | number | boolean | Uint8Array;

/**
 * A CloudEvent as every layer of Eddy sees it. `data` is always bytes; `datacontenttype` says how
 * to read them (see `dataAsText` / `dataAsJson`). `time` is the RFC 3339 string exactly as the
 * producer wrote it, so its offset survives any number of hops.
 */
export interface CloudEvent {
  readonly specversion: '1.0';
  readonly id: string;
  /** A URI-reference (RFC 3986); an absolute URI is recommended. */
  readonly source: string;
  readonly type: string;
  readonly subject?: string;
  /** RFC 3339 date-time with an offset, e.g. `2026-01-02T03:04:05.123+05:30`. */
  readonly time?: string;
  /** RFC 2046 media type of `data`, parameters included. */
  readonly datacontenttype?: string;
  /** An absolute URI. */
  readonly dataschema?: string;
  /** Extension attributes by name (lower-case ASCII letters and digits). */
  readonly extensions?: Readonly<Record<string, ExtensionValue>>;
  readonly data?: Uint8Array;
}

/**
 * Stable, machine-readable names of the rules an event can break. The HTTP layer puts them in
 * its problem+json bodies, so a value never changes once released.
 */
export const ValidationRule = {
  /** A REQUIRED attribute (`specversion`, `id`, `source`, `type`) is missing or null. */
  REQUIRED: 'required',
  /** The value has the wrong type, e.g. a number where a String is required. */
  VALUE_TYPE: 'value-type',
  /** The spec requires a non-empty string here. */
  NON_EMPTY: 'non-empty',
  /** `specversion` is not `1.0`, the only version this broker speaks. */
  SPECVERSION: 'specversion',
  /** `source` is not an RFC 3986 URI-reference. */
  URI_REFERENCE: 'uri-reference',
  /** `dataschema` is not an RFC 3986 absolute URI. */
  ABSOLUTE_URI: 'absolute-uri',
  /** `time` is not an RFC 3339 date-time with an offset, or a field is out of range. */
  RFC3339: 'rfc3339',
  /** `datacontenttype` is not an RFC 2046 media type. */
  MEDIA_TYPE: 'media-type',
  /** An attribute name has characters other than `a`–`z` and `0`–`9`. */
  ATTRIBUTE_NAME: 'attribute-name',
  /** An extension is named like a context attribute, `data` or `data_base64`. */
  RESERVED_NAME: 'reserved-name',
  /** A model object has a field that is not a CloudEvent field (extensions go in `extensions`). */
  UNKNOWN_ATTRIBUTE: 'unknown-attribute',
  /** A String has a control character, a noncharacter or an unpaired surrogate. */
  FORBIDDEN_CHARACTER: 'forbidden-character',
  /** An Integer is not a whole number from -2^31 to 2^31-1. */
  INT32: 'int32',
  /** An attribute value is longer than `attributeValueBytesMax`. */
  TOO_LONG: 'too-long',
  /** The event has more than `extensionCountMax` extensions. */
  TOO_MANY_EXTENSIONS: 'too-many-extensions',
  /** `data` is larger than `dataBytesMax`. */
  TOO_LARGE: 'too-large',
  /** `traceparent` does not follow W3C Trace Context. */
  TRACEPARENT: 'traceparent',
  /** `data_base64` is not RFC 4648 base64. */
  BASE64: 'base64',
  /** Two places carry the same thing: `data` and `data_base64`, or `ce-datacontenttype` and `Content-Type`. */
  MUTUALLY_EXCLUSIVE: 'mutually-exclusive',
  /** A `ce-*` header value is not valid HTTP-binding encoding (quoting, percent-encoding, UTF-8). */
  HEADER_ENCODING: 'header-encoding',
} as const;

export type ValidationRule = (typeof ValidationRule)[keyof typeof ValidationRule];

/** One broken rule: which attribute, which rule, and a sentence for humans. */
export interface ValidationIssue {
  /** The attribute name (`source`, an extension name, `data`, or `extensions` for the count limit). */
  readonly attribute: string;
  readonly rule: ValidationRule;
  readonly message: string;
}

/** Bounds on what one event may carry; each has a default in `DEFAULT_VALIDATION_LIMITS`. */
export interface ValidationLimits {
  /** Longest attribute value in UTF-8 bytes (Binary extensions: in bytes). Default 64 KiB. */
  readonly attributeValueBytesMax?: number;
  /** Most extension attributes on one event. Default 128. */
  readonly extensionCountMax?: number;
  /** Largest `data`, in bytes. Default 1 MiB. */
  readonly dataBytesMax?: number;
}

/** Limits for parsing events from a format or protocol. */
export interface ParseOptions extends ValidationLimits {
  /** Most events in one batch. Default 1000. */
  readonly batchEventCountMax?: number;
}

/** How an HTTP message carries events (CloudEvents HTTP binding 1.0.2, §1.3). */
export const ContentMode = {
  /** Attributes in `ce-*` headers, `data` as the body, `datacontenttype` as `Content-Type`. */
  BINARY: 'binary',
  /** One JSON event as the body (`application/cloudevents+json`). */
  STRUCTURED: 'structured',
  /** A JSON array of events as the body (`application/cloudevents-batch+json`). */
  BATCH: 'batch',
} as const;

export type ContentMode = (typeof ContentMode)[keyof typeof ContentMode];

/** An HTTP request or response as the binding sees it, whatever the server library. */
export interface HttpMessage {
  /** Header names in lower case, as Node and uWebSockets.js give them. */
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: Uint8Array;
}

/** What the egress formatters produce: every header has a value. */
export interface FormattedHttpMessage extends HttpMessage {
  readonly headers: Readonly<Record<string, string>>;
}

/** What `parseHttpRequest` found in a message. */
export interface ParsedHttpMessage {
  readonly mode: ContentMode;
  /** Every event of the message, all valid; empty only for an empty batch. */
  readonly events: CloudEvent[];
}
