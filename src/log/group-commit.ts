/**
 * Group commit: callers wait for "everything before offset N is durable"; one
 * flush at a time runs, and every caller whose offset it covers is released by
 * it. Callers that arrive while a flush runs are covered by the next one, so
 * concurrent appends share fsyncs instead of taking one each.
 *
 * A failed flush is final: the kernel may have dropped the dirty pages, so
 * retrying could report as durable what never reached the disk. Every waiter,
 * present and future, gets the error.
 */
import type { StorageError } from '../native/errors.js';

interface Waiter {
  readonly offset: number;
  readonly resolve: () => void;
  readonly reject: (error: StorageError) => void;
}

export class GroupCommit {
  /** Makes everything appended so far durable; resolves with the offset it covered (exclusive). */
  readonly #flush: () => Promise<number>;
  readonly #onFailure: (error: StorageError) => void;
  #durableOffset: number;
  #waiters: Waiter[] = [];
  #requested = false;
  #running: Promise<void> | null = null;
  #failure: StorageError | null = null;

  constructor(durableOffset: number, flush: () => Promise<number>, onFailure: (error: StorageError) => void) {
    this.#durableOffset = durableOffset;
    this.#flush = flush;
    this.#onFailure = onFailure;
  }

  get durableOffset(): number {
    return this.#durableOffset;
  }

  /** Resolves once every offset below `offset` is durable. */
  whenDurable(offset: number): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    if (offset <= this.#durableOffset) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#waiters.push({ offset, resolve, reject });
      this.request();
    });
  }

  /** Starts a flush of everything appended so far, unless one is already due. */
  request(): void {
    this.#requested = true;
    this.#running ??= this.#run();
  }

  /** Resolves when no flush is running (after the one in flight and any it queued). */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async #run(): Promise<void> {
    try {
      while (this.#requested && this.#failure === null) {
        this.#requested = false;
        let covered: number;
        try {
          covered = await this.#flush();
        } catch (error) {
          this.#fail(error as StorageError);
          return;
        }
        if (covered > this.#durableOffset) this.#durableOffset = covered;
        this.#release();
      }
    } finally {
      this.#running = null;
    }
  }

  #release(): void {
    const waiters = this.#waiters;
    let released = 0;
    while (released < waiters.length && (waiters[released] as Waiter).offset <= this.#durableOffset) {
      (waiters[released] as Waiter).resolve();
      released++;
    }
    if (released > 0) waiters.splice(0, released);
    if (waiters.length > 0) this.#requested = true;
  }

  #fail(error: StorageError): void {
    this.#failure = error;
    for (const waiter of this.#waiters) waiter.reject(error);
    this.#waiters = [];
    this.#onFailure(error);
  }
}
