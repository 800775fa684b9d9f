import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  BrokerError,
  decodeFrame,
  encodeFrame,
  errorCodes,
  errorNameOf,
  isBrokerError,
} from '../../src/protocol/index.js';

describe('protocol > error-codes', () => {
  it('gives every error a distinct code', () => {
    const codes = Object.values(errorCodes).map((info) => info.code);
    expect(new Set(codes).size).toBe(codes.length);
  });

  it('survives the wire round trip as the same typed error', () => {
    for (const [name, info] of Object.entries(errorCodes)) {
      const decoded = decodeFrame(encodeFrame(42, { type: 'Error', code: info.code, message: name })).message;
      if (decoded.type !== 'Error') throw new Error('expected an Error frame');
      const error = BrokerError.fromWire(decoded.code, decoded.message, 42);
      expect(isBrokerError(error, name as keyof typeof errorCodes)).toBe(true);
      expect(error.retriable).toBe(info.retriable);
      expect(error.requestId).toBe(42);
    }
  });

  it('carries the wait an Error frame advises as retryAfterMs, and none when it advises none', () => {
    const code = errorCodes.QUOTA_EXCEEDED.code;
    for (const [retryAfterMs, expected] of [
      [250, 250],
      [0, undefined],
      [undefined, undefined],
    ] as const) {
      const decoded = decodeFrame(
        encodeFrame(9, {
          type: 'Error',
          code,
          message: 'over the quota',
          ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
        }),
      ).message;
      if (decoded.type !== 'Error') throw new Error('expected an Error frame');
      const error = BrokerError.fromWire(decoded.code, decoded.message, 9, decoded.retryAfterMs);
      expect(isBrokerError(error, 'QUOTA_EXCEEDED')).toBe(true);
      expect(error.retryAfterMs).toBe(expected);
      expect('retryAfterMs' in error).toBe(expected !== undefined);
    }
  });

  it('reads a code from a newer broker as INTERNAL', () => {
    expect(errorNameOf(65_000)).toBe('INTERNAL');
  });

  it('lists exactly the codes of the table in docs/reference/errors.md', () => {
    const doc = fs.readFileSync(new URL('../../docs/reference/errors.md', import.meta.url), 'utf8');
    const documented = [...doc.matchAll(/^\| (\d+) \| `(\w+)` \| (\d+) \| (yes|no) \|/gm)].map((m) => ({
      code: Number(m[1]),
      name: m[2],
      httpStatus: Number(m[3]),
      retriable: m[4] === 'yes',
    }));
    expect(documented).toEqual(
      Object.entries(errorCodes).map(([name, info]) => ({
        code: info.code,
        name,
        httpStatus: info.httpStatus,
        retriable: info.retriable,
      })),
    );
  });
});
