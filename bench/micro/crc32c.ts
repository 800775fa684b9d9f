/**
 * CRC32C (Castagnoli) through the native addon (`native.crc32c`, SSE4.2 where the CPU has it):
 * the checksum the log takes of every batch it appends and checks of every batch it reads. One
 * operation is one call over a buffer of `bytes` bytes; MB/s is ops/s × bytes.
 */
import { randomFillSync } from 'node:crypto';
import { native } from '../../src/native/binding.js';
import type { MicroArea } from './case.js';

const SIZES = [100, 1024, 64 * 1024] as const;

export async function crc32cArea(): Promise<MicroArea> {
  const implementation = native.crc32cImplementation();
  return {
    cases: SIZES.map((bytes) => {
      const buffer = randomFillSync(new Uint8Array(bytes));
      return {
        name: 'crc32c',
        params: { bytes, implementation, op: 'call' },
        opsPerCall: 1,
        run: () => native.crc32c(buffer, 0),
      };
    }),
    close: async () => {},
  };
}
