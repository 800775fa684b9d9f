/**
 * What other layers may import of the WebAssembly filters: the host (load,
 * check, run within limits; ./wasm) and the registry that stores modules as
 * name@version (./registry.ts). CESQL is ./cesql.ts (published as
 * `eddy/cesql`) and the Subscriptions API dialects ./dialects.ts.
 */
export * from './wasm/index.js';
export {
  FILTER_NAME_LENGTH_MAX,
  FILTER_VERSION_MAX,
  FilterRegistry,
  defaultVersionsMax,
  formatFilterRef,
  invalidFilterName,
  parseFilterRef,
  type FilterDescription,
  type FilterRef,
  type FilterRegistryOptions,
  type FilterVersions,
  type PutFilterOptions,
  type PutFilterResult,
  type StoredFilter,
} from './registry.js';
