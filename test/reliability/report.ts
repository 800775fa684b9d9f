/**
 * One row of the reliability table (`npm run reliability`, scripts/soak/run.sh):
 * what a fault check did and what it found. Each check records its row once it
 * has asserted; scripts/reliability-table.mjs prints the rows as a table. Rows
 * go to the JSON-lines file EDDY_RELIABILITY_REPORT names, and nowhere when it
 * is unset (a plain `npm test`).
 */
import fs from 'node:fs';

export interface FaultRow {
  /** What was done to the broker, e.g. `kill -9 under durable acks`. */
  readonly fault: string;
  /** Times the fault was applied (kills, corrupted files, fuzzed frames, …). */
  readonly runs: number;
  /** Events the broker acknowledged to publishers during the check. */
  readonly acknowledged: number;
  /** Acknowledged events missing afterwards. */
  readonly lost: number;
  /** The guarantee allows loss here (e.g. `leader` acks: what the OS had not written), so it is reported, not failed. */
  readonly lossAllowed?: boolean;
  /** Events stored or delivered more often than the guarantee allows. */
  readonly duplicated: number;
  /** How long the broker took to serve again after each fault, in milliseconds. */
  readonly recoveryMs: readonly number[];
  /** Errors the clients or the checker saw, by type (error name, close code, …). */
  readonly errors: Readonly<Record<string, number>>;
  /** One line of context: rates, sizes, what is reported rather than failed. */
  readonly note?: string;
}

export function recordFault(row: FaultRow): void {
  const file = process.env['EDDY_RELIABILITY_REPORT'];
  if (file === undefined || file === '') return;
  fs.appendFileSync(file, JSON.stringify(row) + '\n');
}

/** Counts `name` into `errors`. */
export function countError(errors: Record<string, number>, name: string): void {
  errors[name] = (errors[name] ?? 0) + 1;
}
