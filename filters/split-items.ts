// Splitter: an event whose JSON data holds an "items" array becomes one event
// per item. Each keeps the original's attributes and extensions, with id
// "<id>-<n>", type "<type>.item", the item's JSON as data, and the original id
// as extension `causationid`. Events without items pass unchanged; an empty
// array drops the event.
//
//   {"orderId":"o-1","items":[{"sku":"a","qty":1},{"sku":"b","qty":2}]}
//     -> {"sku":"a","qty":1} (id "<id>-0"), {"sku":"b","qty":2} (id "<id>-1")

import { Event, Output, jsonArray, transform } from '../wasm';
export * from '../wasm/exports';

transform((event: Event, out: Output): void => {
  const items = jsonArray(event.data, 'items');
  if (items === null) {
    out.keep(event);
    return;
  }
  const id = event.id.toString();
  const type = event.type.toString() + '.item';
  while (items.next()) {
    out
      .from(event)
      .setId(id + '-' + items.index.toString())
      .setType(type)
      .setDataRange(items.start, <i32>(items.end - items.start))
      .setExtensionString('causationid', id)
      .emit();
  }
});
