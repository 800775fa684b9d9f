/**
 * Errors raised by the storage layer. The native addon constructs `StorageError`
 * itself (the class is handed to it by `binding.ts` at load time), so an OS
 * failure arrives in TypeScript already typed, with a code that never changes
 * between releases. Callers switch on `code`, never on `message`.
 */

export const StorageErrorCode = {
  /** ENOSPC / EDQUOT: the disk (or quota) is full. Retriable once space returns. */
  STORAGE_FULL: 'STORAGE_FULL',
  /** EFBIG: the file would exceed the process or filesystem size limit. */
  FILE_TOO_LARGE: 'FILE_TOO_LARGE',
  /** EIO: the device reported an I/O error. Never retried as if nothing happened. */
  IO_ERROR: 'IO_ERROR',
  /** EACCES / EPERM / EROFS. */
  PERMISSION_DENIED: 'PERMISSION_DENIED',
  /** ENOENT. */
  NOT_FOUND: 'NOT_FOUND',
  /** EEXIST. */
  ALREADY_EXISTS: 'ALREADY_EXISTS',
  /** EMFILE / ENFILE. */
  TOO_MANY_OPEN_FILES: 'TOO_MANY_OPEN_FILES',
  /** ENOMEM (mmap could not reserve address space). */
  OUT_OF_MEMORY: 'OUT_OF_MEMORY',
  /** Any other errno; `errno` on the error names it. */
  STORAGE_ERROR: 'STORAGE_ERROR',
  /** A flush failed earlier on this file: its dirty pages may be lost, so nothing more is accepted. */
  FSYNC_FAILED: 'FSYNC_FAILED',
  /** The file or log was closed. */
  CLOSED: 'CLOSED',
  /** A stored batch failed its CRC or structure check. Never delivered as data. */
  CORRUPT_RECORD: 'CORRUPT_RECORD',
  /** The partition refuses writes after a storage failure until it is reopened. */
  PARTITION_FAILED: 'PARTITION_FAILED',
  /** The requested offset is below the log start or above its end. */
  OFFSET_OUT_OF_RANGE: 'OFFSET_OUT_OF_RANGE',
  /** A record is larger than a segment can ever hold. */
  RECORD_TOO_LARGE: 'RECORD_TOO_LARGE',
  /** The log directory is locked by another process, or already open in this one. */
  LOCKED: 'LOCKED',
} as const;

export type StorageErrorCode = (typeof StorageErrorCode)[keyof typeof StorageErrorCode];

export interface StorageErrorDetail {
  /** The errno name (`ENOSPC`) when the error came from a system call. */
  readonly errno?: string;
  readonly syscall?: string;
  readonly path?: string;
  readonly cause?: unknown;
}

const retriableCodes: ReadonlySet<StorageErrorCode> = new Set([
  StorageErrorCode.STORAGE_FULL,
  StorageErrorCode.FILE_TOO_LARGE,
  StorageErrorCode.TOO_MANY_OPEN_FILES,
  StorageErrorCode.OUT_OF_MEMORY,
]);

const brand = Symbol.for('eddy.StorageError');

export class StorageError extends Error {
  override readonly name = 'StorageError';
  readonly code: StorageErrorCode;
  readonly errno: string | undefined;
  readonly syscall: string | undefined;
  readonly path: string | undefined;

  constructor(code: StorageErrorCode, message: string, detail: StorageErrorDetail = {}) {
    super(message, detail.cause === undefined ? undefined : { cause: detail.cause });
    this.code = code;
    this.errno = detail.errno;
    this.syscall = detail.syscall;
    this.path = detail.path;
  }

  /** Whether the same operation may succeed later without operator action on the data. */
  get retriable(): boolean {
    return retriableCodes.has(this.code);
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[brand] === true;
  }

  get [brand](): true {
    return true;
  }
}

export function isStorageError(value: unknown, code?: StorageErrorCode): value is StorageError {
  return value instanceof StorageError && (code === undefined || value.code === code);
}
