/**
 * The WebAssembly filter host: what the broker may import. A FilterSandbox
 * loads modules built against the guest SDK in wasm/ (ABI in abi.ts, limits in
 * limits.ts) and runs them over stored event blocks in a thread it can stop.
 */
export { ABI_VERSION, IMPORT_MODULE, filterKinds, type FilterKind } from './abi.js';
export {
  FilterError,
  filterErrors,
  isFilterError,
  type FilterErrorAction,
  type FilterErrorName,
} from './errors.js';
export { FilterInstance, eventCountOf } from './instance.js';
export { defaultFilterLimits, filterLimits, type FilterLimits } from './limits.js';
export { checkModule, type CheckedModule, type ModuleMemory } from './module-check.js';
export { FilterSandbox } from './sandbox.js';
export {
  isKept,
  trapPolicies,
  type EventFailure,
  type FilterLoadOptions,
  type FilterOutcome,
  type FilterSandboxOptions,
  type FilterState,
  type FilterStatus,
  type LogLevel,
  type RunOptions,
  type RunOutcome,
  type TransformOutcome,
  type TrapPolicy,
} from './types.js';
