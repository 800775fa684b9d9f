// Keeps every event: what the filter machinery itself costs (copying a batch
// into the sandbox, the call, the bitmap back), as the benchmark's baseline
// for a WASM filter on a subscription.

import { Event, filter } from '../wasm';
export * from '../wasm/exports';

filter((_event: Event): bool => true);
