// The host functions a filter may import, ABI version 1. AssemblyScript names
// the import module after this file, so every declaration here is imported as
// `broker_filter_v1.<name>`: a module built against another ABI version names
// another module and fails when the broker loads it. docs/filters.md
// ("WASM filters", "The ABI") describes each function; the host implements
// them in src/filters/wasm/instance.ts.

/**
 * Gives up on the current call: the host reads `length` bytes of UTF-8 at
 * `message` as the reason (at most 1 KiB) and ends the call with a trap.
 * Never returns.
 */
export declare function abort(message: usize, length: usize): void;

/**
 * Hands the host a line of UTF-8 text at `message` for the broker's log.
 * `level`: 0 debug, 1 info, 2 warn, 3 error. The host keeps at most a few
 * lines per call and cuts long ones.
 */
export declare function log(level: i32, message: usize, length: usize): void;
