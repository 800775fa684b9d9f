/**
 * LZ4 for event blocks. The broker and the Node SDK use lz4-napi (native);
 * in a browser there is no LZ4 unless the application passes a codec, and
 * the client then sends uncompressed blocks and refuses compressed ones.
 */
export interface Lz4Codec {
  /** LZ4 block with the uncompressed size prepended (u32 little-endian), as lz4-napi writes it. */
  compress(bytes: Uint8Array): Uint8Array;
  uncompress(bytes: Uint8Array): Uint8Array;
}

interface Lz4Napi {
  compressSync(data: Uint8Array): Uint8Array;
  uncompressSync(data: Uint8Array): Uint8Array;
}

/** lz4-napi when it loads (Node), else null. The specifier is a variable so browser bundlers skip it. */
export async function loadLz4(): Promise<Lz4Codec | null> {
  const name = 'lz4-napi';
  try {
    const module = (await import(name)) as Lz4Napi & { default?: Lz4Napi };
    const lz4 = module.default ?? module;
    return {
      compress: (bytes) => lz4.compressSync(bytes),
      uncompress: (bytes) => lz4.uncompressSync(bytes),
    };
  } catch {
    return null;
  }
}
