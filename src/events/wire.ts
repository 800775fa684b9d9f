/**
 * CloudEvents to and from the fields of the wire's event block
 * (`protocol/event-batch.ts`). Edge code: the SDK when publishing and
 * consuming, the HTTP API; the publish path stores event blocks untouched.
 */
import type { EventFields, ExtensionField } from '../protocol/index.js';
import type { CloudEvent, ExtensionValue } from './types.js';

function extensionField(name: string, value: ExtensionValue): ExtensionField {
  if (typeof value === 'string') return { name, kind: 'string', value };
  if (typeof value === 'number') return { name, kind: 'integer', value };
  if (typeof value === 'boolean') return { name, kind: 'boolean', value };
  return { name, kind: 'binary', value };
}

export function toEventFields(event: CloudEvent): EventFields {
  // Without extensions a CloudEvent already has the shape of the wire's fields: no copy.
  if (event.extensions === undefined) return event as unknown as EventFields;
  const extensions = event.extensions
    ? Object.keys(event.extensions)
        .sort()
        .map((name) =>
          extensionField(name, (event.extensions as Record<string, ExtensionValue>)[name] as ExtensionValue),
        )
    : [];
  return {
    id: event.id,
    source: event.source,
    type: event.type,
    specversion: event.specversion,
    ...(event.subject === undefined ? {} : { subject: event.subject }),
    ...(event.time === undefined ? {} : { time: event.time }),
    ...(event.datacontenttype === undefined ? {} : { datacontenttype: event.datacontenttype }),
    ...(event.dataschema === undefined ? {} : { dataschema: event.dataschema }),
    ...(extensions.length > 0 ? { extensions } : {}),
    ...(event.data === undefined ? {} : { data: event.data }),
  };
}

/**
 * The event a wire record describes, not yet validated: pass it to
 * `validateEvent` (attributes from the wire may break any rule).
 */
export function fromEventFields(fields: EventFields): CloudEvent {
  // Assigned one by one rather than spread: consumers call this for every event delivered.
  const event: { -readonly [K in keyof CloudEvent]: CloudEvent[K] } = {
    specversion: (fields.specversion ?? '1.0') as '1.0',
    id: fields.id,
    source: fields.source,
    type: fields.type,
  };
  if (fields.subject !== undefined) event.subject = fields.subject;
  if (fields.time !== undefined) event.time = fields.time;
  if (fields.datacontenttype !== undefined) event.datacontenttype = fields.datacontenttype;
  if (fields.dataschema !== undefined) event.dataschema = fields.dataschema;
  if (fields.extensions !== undefined && fields.extensions.length > 0) {
    const extensions: Record<string, ExtensionValue> = {};
    for (const extension of fields.extensions) extensions[extension.name] = extension.value;
    event.extensions = extensions;
  }
  if (fields.data !== undefined) event.data = fields.data;
  return event;
}
