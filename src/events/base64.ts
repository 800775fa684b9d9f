/**
 * RFC 4648 §4 base64 (standard alphabet, padded). Decoding is strict — no whitespace, no
 * URL-safe alphabet, padding only at the end — because `data_base64` is validated input.
 * Non-zero pad bits are accepted, as §3.5 allows.
 */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const SEXTETS = new Int8Array(128).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) SEXTETS[ALPHABET.charCodeAt(i)] = i;
const EQUALS = 0x3d;
// String.fromCharCode takes its arguments on the stack; chunks keep it far from the limit.
const CHUNK_BYTES = 0x2000;

export function encodeBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += CHUNK_BYTES) {
    binary += String.fromCharCode(...bytes.subarray(i, i + CHUNK_BYTES));
  }
  return btoa(binary);
}

function sextet(text: string, index: number): number {
  const code = text.charCodeAt(index);
  return code < 128 ? (SEXTETS[code] ?? -1) : -1;
}

/** The bytes `text` encodes, or undefined if it is not canonical padded base64. */
export function decodeBase64(text: string): Uint8Array | undefined {
  const length = text.length;
  if (length % 4 !== 0) return undefined;
  let padding = 0;
  if (length > 0 && text.charCodeAt(length - 1) === EQUALS) {
    padding = text.charCodeAt(length - 2) === EQUALS ? 2 : 1;
  }
  const bytes = new Uint8Array((length / 4) * 3 - padding);
  const dataEnd = length - padding;
  let out = 0;
  let i = 0;
  // A -1 sextet sets the sign bit of the combined value, so one test catches any bad character.
  for (; i + 4 <= dataEnd; i += 4) {
    const n =
      (sextet(text, i) << 18) |
      (sextet(text, i + 1) << 12) |
      (sextet(text, i + 2) << 6) |
      sextet(text, i + 3);
    if (n < 0) return undefined;
    bytes[out++] = n >> 16;
    bytes[out++] = n >> 8;
    bytes[out++] = n;
  }
  if (padding === 2) {
    const n = (sextet(text, i) << 6) | sextet(text, i + 1);
    if (n < 0) return undefined;
    bytes[out] = n >> 4;
  } else if (padding === 1) {
    const n = (sextet(text, i) << 12) | (sextet(text, i + 1) << 6) | sextet(text, i + 2);
    if (n < 0) return undefined;
    bytes[out++] = n >> 10;
    bytes[out] = n >> 2;
  }
  return bytes;
}
