/**
 * The CloudEvents layer (spec 1.0.2): what other layers and the client SDK may import. Browser-
 * safe throughout. Internals (`uri`, `timestamp` but for `parseTimestampMs`, `media-type`, `base64`, `header-value`,
 * `json-span`, `utf8`) stay private.
 */
export type {
  CloudEvent,
  ExtensionValue,
  FormattedHttpMessage,
  HttpMessage,
  ParseOptions,
  ParsedHttpMessage,
  ValidationIssue,
  ValidationLimits,
} from './types.js';
export { ContentMode, ValidationRule } from './types.js';
export { createEvent, dataAsJson, dataAsText, type CreateEventInput } from './event.js';
export { DEFAULT_LIMITS, validateEvent } from './validate.js';
export { Extension, causedBy, deliverAtOf, isTraceparent, type CausationExtensions } from './extensions.js';
export { parseTimestampMs } from './timestamp.js';
export { formatJsonBatch, formatJsonEvent, parseJsonBatch, parseJsonEvent } from './json-format.js';
export { formatHttpBatch, formatHttpBinary, formatHttpStructured, parseHttpRequest } from './http-binding.js';
export {
  CloudEventValidationError,
  EventsError,
  EventsErrorCode,
  MalformedBodyError,
  TooManyEventsError,
  UnsupportedContentTypeError,
  isEventsError,
  type InvalidEvent,
} from './errors.js';
export { fromEventFields, toEventFields } from './wire.js';
export { EventBlockChecker, type InvalidEventReport } from './block-check.js';
