/** Shared UTF-8 codecs: one instance each, created once, never per event. */

export const utf8Encoder = new TextEncoder();

// `fatal`: malformed input must be rejected, not silently turned into U+FFFD.
const strictDecoder = new TextDecoder('utf-8', { fatal: true });
// Header values keep a leading U+FEFF: it is part of the value, not a byte-order mark.
const strictBomKeepingDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The text of `bytes` (a leading byte-order mark dropped), or undefined if they are not UTF-8. */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return undefined;
  }
}

/** Like `decodeUtf8`, but a leading U+FEFF is kept as a character. */
export function decodeUtf8KeepingBom(bytes: Uint8Array): string | undefined {
  try {
    return strictBomKeepingDecoder.decode(bytes);
  } catch {
    return undefined;
  }
}
