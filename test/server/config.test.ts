import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/server/config.js';

describe('server > config > filter settings', () => {
  it('gives each WASM guest call 50 ms and leaves the filter threads at normal priority by default', () => {
    expect(resolveConfig({})).toMatchObject({ filterCallTimeoutMs: 50, filterThreadNice: 0 });
  });

  it('refuses a call budget or a nice value out of range', () => {
    expect(() => resolveConfig({ filterCallTimeoutMs: 0 })).toThrow(/filterCallTimeoutMs/);
    expect(() => resolveConfig({ filterCallTimeoutMs: 60_001 })).toThrow(RangeError);
    expect(() => resolveConfig({ filterThreadNice: 20 })).toThrow(/filterThreadNice/);
    expect(() => resolveConfig({ filterThreadNice: -1 })).toThrow(RangeError);
    expect(resolveConfig({ filterCallTimeoutMs: 500, filterThreadNice: 19 })).toMatchObject({
      filterCallTimeoutMs: 500,
      filterThreadNice: 19,
    });
  });
});
