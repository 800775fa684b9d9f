import type { EventFields } from '../../src/protocol/index.js';

/** A valid event with every attribute set and one extension of each kind. */
export const fullEventFields: EventFields = {
  id: 'a-1',
  source: 'https://example.com/orders',
  type: 'com.example.order.created',
  specversion: '1.0',
  subject: 'order-1',
  time: '2026-01-02T03:04:05.123+05:30',
  datacontenttype: 'application/json',
  dataschema: 'https://example.com/order.json',
  extensions: [
    { name: 'binaryext', kind: 'binary', value: new Uint8Array([0, 255]) },
    { name: 'boolext', kind: 'boolean', value: true },
    { name: 'correlationid', kind: 'string', value: 'c-1' },
    { name: 'intext', kind: 'integer', value: -2_147_483_648 },
    { name: 'traceparent', kind: 'string', value: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    { name: 'uriext', kind: 'uri', value: 'https://example.com' },
  ],
  data: new TextEncoder().encode('{"amount":42}'),
};
