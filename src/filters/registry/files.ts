/**
 * Durable file steps for the filter registry, on node:fs/promises so that an
 * upload's fsyncs wait in libuv's thread pool rather than on the thread
 * serving the gateway. A file appears whole or not at all: written to a
 * `.tmp-` name, fsynced, renamed into place; the caller fsyncs the directory.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { BrokerError } from '../../protocol/index.js';

/** Files named so are unfinished writes: whatever a crash leaves of them is removed at open. */
export const TEMP_PREFIX = '.tmp-';

/** Makes the entries of `dir` (files created, renamed or removed in it) durable. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes `bytes` to `file` through a fsynced temp file and a rename; `dir` still needs a syncDirectory. */
export async function writeFileDurably(file: string, bytes: Uint8Array | string): Promise<void> {
  const temp = path.join(path.dirname(file), `${TEMP_PREFIX}${randomBytes(6).toString('hex')}`);
  try {
    const handle = await fs.open(temp, 'wx');
    try {
      await handle.writeFile(bytes);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(temp, file);
  } catch (error) {
    await removeIfPresent(temp);
    throw storageError(error, file);
  }
}

/** Removes a file; one already gone is fine. */
export async function removeIfPresent(file: string): Promise<void> {
  await fs.rm(file, { force: true });
}

export function isNotFound(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}

/** A full disk as the broker's STORAGE_FULL; any other error as it is. */
export function storageError(error: unknown, file: string): unknown {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new BrokerError('STORAGE_FULL', `no space left to write ${file}`, { cause: error });
  return error;
}
