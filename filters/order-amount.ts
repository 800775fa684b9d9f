// Content filter: keeps orders whose JSON data has an "amount" above
// MINIMUM_AMOUNT; drops the rest, and events with no such number.
//
//   {"orderId":"o-17","amount":250.5,"currency":"EUR"}   kept
//   {"orderId":"o-18","amount":99,"currency":"EUR"}      dropped
//
// One JSON scan of each event's data, in place; nothing is allocated.

import { Event, filter, jsonNumber } from '../wasm';
export * from '../wasm/exports';

const MINIMUM_AMOUNT: f64 = 100;

filter((event: Event): bool => jsonNumber(event.data, 'amount') > MINIMUM_AMOUNT);
