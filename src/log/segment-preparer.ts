/**
 * Creates the files of the next segment before the log needs them, on the
 * libuv pool, so that a roll renames three ready files instead of allocating
 * and first-touching them on the appending thread (see `preallocateAsync`).
 *
 * The files carry a `prepared-` name until the roll gives them a base offset;
 * recovery deletes any left by a crash, since nothing was ever written to them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { native } from '../native/binding.js';

export interface PreparedSegmentFiles {
  readonly log: string;
  readonly index: string;
  readonly timeindex: string;
}

export interface SegmentFileSizes {
  readonly log: number;
  readonly index: number;
  readonly timeindex: number;
}

export const PREPARED_PREFIX = 'prepared-';

export class SegmentPreparer {
  readonly #dir: string;
  readonly #sizes: SegmentFileSizes;
  readonly #onPrepared: () => void;
  #sequence = 0;
  #ready: PreparedSegmentFiles | null = null;
  #pending: Promise<void> | null = null;

  constructor(dir: string, sizes: SegmentFileSizes, onPrepared: () => void) {
    this.#dir = dir;
    this.#sizes = sizes;
    this.#onPrepared = onPrepared;
  }

  /**
   * Starts preparing unless a set is ready or on its way. A failure (a full
   * disk, say) leaves nothing behind and is not reported here: the roll then
   * creates the files itself and reports its own error to the appender.
   */
  prepare(): void {
    if (this.#ready !== null || this.#pending !== null) return;
    const name = `${PREPARED_PREFIX}${this.#sequence++}`;
    const files: PreparedSegmentFiles = {
      log: path.join(this.#dir, `${name}.log`),
      index: path.join(this.#dir, `${name}.index`),
      timeindex: path.join(this.#dir, `${name}.timeindex`),
    };
    const created = (['log', 'index', 'timeindex'] as const).map((kind) =>
      native.preallocateAsync(files[kind], this.#sizes[kind]),
    );
    this.#pending = Promise.allSettled(created).then((outcomes) => {
      this.#pending = null;
      if (outcomes.every((outcome) => outcome.status === 'fulfilled')) {
        this.#ready = files;
        this.#onPrepared();
      } else {
        removeFiles(files);
      }
    });
  }

  /** The prepared files if they are ready (the caller then owns them), else null. */
  take(): PreparedSegmentFiles | null {
    const ready = this.#ready;
    this.#ready = null;
    return ready;
  }

  /** Waits for a preparation in flight and deletes whatever was prepared. */
  async discard(): Promise<void> {
    await this.#pending;
    const ready = this.take();
    if (ready) removeFiles(ready);
  }
}

function removeFiles(files: PreparedSegmentFiles): void {
  for (const file of [files.log, files.index, files.timeindex]) fs.rmSync(file, { force: true });
}
