/**
 * The dead-letter API's shapes (`/v1/dlq`, docs/subscriptions.md#dead-letters),
 * shared by the broker that answers and the SDK that asks.
 */

/** Where a dead letter came from and why it died, from its dead-letter extensions (absent ones are null). */
export interface DeadLetterOrigin {
  readonly topic: string | null;
  readonly partition: number | null;
  /** A string: offsets outgrow CloudEvents integers. */
  readonly offset: string | null;
  readonly subscription: string | null;
  readonly attempts: number | null;
  readonly reason: string | null;
  readonly error: string | null;
}

/** One dead letter sent back, as recorded. */
export interface Redrive {
  readonly at: string;
  readonly partition: number;
  readonly offset: number;
  readonly target: string;
  readonly targetPartition: number;
  readonly targetOffset: number;
}

/** Which dead letters a redrive sends, and where. */
export interface RedriveRequest {
  readonly partition?: number;
  /** These offsets; or, without them, every dead letter from `from` (default: the start) to `to` (exclusive, default: the end). */
  readonly offsets?: readonly number[];
  readonly from?: number;
  readonly to?: number;
  /** Where to publish them; default: the topic each came from. */
  readonly target?: string;
  /** Redrive dead letters that were redriven before, too. Default false: they are skipped. */
  readonly again?: boolean;
}

export interface DeadLetterTopic {
  readonly topic: string;
  readonly deadLetters: number;
  readonly redriven: number;
}
