/**
 * A state written to disk whole, again and again (committed offsets, a
 * subscription's state): each request resolves once a write begun after it
 * has finished, and the requests that arrive while a write is under way share
 * the next one, so a burst of commits costs two writes, not one each. Writes
 * never overlap and run in request order.
 */
export class CoalescedWrites {
  readonly #write: () => Promise<void>;
  #waiting: { readonly resolve: () => void; readonly reject: (error: unknown) => void }[] = [];
  #writing: Promise<void> | null = null;

  /** `write` stores the state as it is when called. */
  constructor(write: () => Promise<void>) {
    this.#write = write;
  }

  /** Resolves once a write begun after this call is done; rejects with its error. */
  request(): Promise<void> {
    const done = new Promise<void>((resolve, reject) => this.#waiting.push({ resolve, reject }));
    this.#writing ??= this.#loop();
    return done;
  }

  /** Resolves once no write is under way or waiting (never rejects). */
  settled(): Promise<void> {
    return this.#writing ?? Promise.resolve();
  }

  /** Rejects every request not yet being written with `error`; the write under way finishes. */
  cancelWaiting(error: unknown): void {
    for (const waiter of this.#waiting.splice(0)) waiter.reject(error);
  }

  async #loop(): Promise<void> {
    while (this.#waiting.length > 0) {
      const waiting = this.#waiting.splice(0);
      try {
        await this.#write();
        for (const waiter of waiting) waiter.resolve();
      } catch (error) {
        for (const waiter of waiting) waiter.reject(error);
      }
    }
    this.#writing = null;
  }
}
