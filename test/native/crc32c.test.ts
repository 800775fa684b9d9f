import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native/binding.js';

const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('native > crc32c', () => {
  describe('known vectors', () => {
    it('matches the Castagnoli check value for "123456789"', () => {
      expect(native.crc32c(ascii('123456789'), 0)).toBe(0xe3069283);
      expect(native.crc32cSoftware(ascii('123456789'), 0)).toBe(0xe3069283);
    });

    it('is 0 for empty input', () => {
      expect(native.crc32c(new Uint8Array(0), 0)).toBe(0);
      expect(native.crc32cSoftware(new Uint8Array(0), 0)).toBe(0);
    });

    it('matches the RFC 3720 (iSCSI) vectors', () => {
      const ascending = Uint8Array.from({ length: 32 }, (_, i) => i);
      const descending = Uint8Array.from({ length: 32 }, (_, i) => 31 - i);
      for (const crc of [native.crc32c, native.crc32cSoftware]) {
        expect(crc(new Uint8Array(32), 0)).toBe(0x8a9136aa);
        expect(crc(new Uint8Array(32).fill(0xff), 0)).toBe(0x62a8ab43);
        expect(crc(ascending, 0)).toBe(0x46dd794e);
        expect(crc(descending, 0)).toBe(0x113fdb5c);
      }
    });

    it('returns an unsigned 32-bit integer', () => {
      const crc = native.crc32c(ascii('123456789'), 0);
      expect(Number.isInteger(crc)).toBe(true);
      expect(crc).toBeGreaterThan(0x7fffffff);
    });
  });

  describe('chaining', () => {
    it('continues from a seed: crc(b, crc(a)) equals crc(a + b)', () => {
      const bytes = randomBytes(70_000);
      const whole = native.crc32c(bytes, 0);
      for (const split of [0, 1, 7, 8, 255, 4096, 24_577, 69_999, 70_000]) {
        const first = native.crc32c(bytes.subarray(0, split), 0);
        expect(native.crc32c(bytes.subarray(split), first)).toBe(whole);
        expect(native.crc32cSoftware(bytes.subarray(split), first)).toBe(whole);
      }
    });

    it('leaves the seed unchanged for empty input', () => {
      expect(native.crc32c(new Uint8Array(0), 0xe3069283)).toBe(0xe3069283);
    });
  });

  describe('hardware and software paths', () => {
    it('agree on random buffers of many lengths and odd offsets', () => {
      const pool = randomBytes(3 * 8192 * 2 + 64);
      // Every short length, then lengths around the 3 x 256 and 3 x 8192 block boundaries.
      const lengths = [...Array.from({ length: 130 }, (_, i) => i)];
      for (const boundary of [768, 1536, 24_576, 49_152]) {
        for (let d = -9; d <= 9; d++) lengths.push(boundary + d);
      }
      for (const length of lengths) {
        for (const offset of [0, 1, 3, 5, 8, 13]) {
          const view = pool.subarray(offset, offset + length);
          const seed = (length * 2654435761) >>> 0;
          expect(native.crc32c(view, seed), `length ${length} offset ${offset}`).toBe(
            native.crc32cSoftware(view, seed),
          );
        }
      }
    });

    it('honours byteOffset and byteLength of a Uint8Array over a larger buffer', () => {
      const backing = randomBytes(1000);
      const view = new Uint8Array(backing.buffer, backing.byteOffset + 101, 777);
      const copy = Uint8Array.from(view);
      expect(native.crc32c(view, 0)).toBe(native.crc32c(copy, 0));
      expect(native.crc32cSoftware(view, 0)).toBe(native.crc32c(copy, 0));
    });

    it('uses sse4.2 when the CPU has it', () => {
      const cpuinfo = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
      const hasSse42 = process.arch === 'x64' && /\bsse4_2\b/.test(cpuinfo);
      expect(native.crc32cImplementation()).toBe(hasSse42 ? 'sse4.2' : 'software');
    });
  });

  describe('argument checks', () => {
    it('rejects bytes that are not a Uint8Array with a TypeError', () => {
      const call = native.crc32c as (bytes: unknown, seed: unknown) => number;
      expect(() => call('123', 0)).toThrow(TypeError);
      expect(() => call(new Uint16Array(4), 0)).toThrow(TypeError);
      expect(() => call(new Uint8Array(4), '0')).toThrow(TypeError);
    });

    it('rejects a seed outside [0, 2^32) with a RangeError', () => {
      expect(() => native.crc32c(new Uint8Array(4), -1)).toThrow(RangeError);
      expect(() => native.crc32c(new Uint8Array(4), 2 ** 32)).toThrow(RangeError);
      expect(() => native.crc32c(new Uint8Array(4), 1.5)).toThrow(RangeError);
    });
  });
});
