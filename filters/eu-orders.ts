// Attribute filter: keeps order-created events bound for the EU, by the
// `region` extension when the event has one, else by a subject under "eu/".
// Reads attributes and extensions in place; never looks at the data.

import { Event, filter } from '../wasm';
export * from '../wasm/exports';

filter((event: Event): bool => {
  if (!event.type.equals('com.example.order.created')) return false;
  const region = event.extensionText('region');
  if (region !== null) return region.equals('eu');
  const subject = event.subject;
  return subject !== null && subject.startsWith('eu/');
});
