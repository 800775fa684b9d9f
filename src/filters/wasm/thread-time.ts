/**
 * CPU time of one thread, for the watchdog (sandbox.ts): a budget in wall
 * time blames a guest for the time its thread waited for a core, which on a
 * saturated machine can be ten times its own. Linux tells each thread's CPU
 * time in /proc: `schedstat` (first field, ns run on a CPU) where the kernel
 * has it, else `stat` (utime + stime, in clock ticks). Elsewhere there is no
 * reading, and the budgets stay wall time.
 */
import fs from 'node:fs';

/** Where a thread's CPU time is read from (shared with the watchdog as a number). */
export const CpuSource = { none: 0, schedstat: 1, stat: 2 } as const;
export type CpuSource = (typeof CpuSource)[keyof typeof CpuSource];

/**
 * Clock ticks per second of `stat`'s utime and stime: the kernel's USER_HZ,
 * 100 on every architecture Node supports on Linux (`getconf CLK_TCK`).
 */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * How many times its CPU budget a call may take in wall time, however little
 * of it the thread ran: a thread starved that long still ends.
 */
export const WALL_BUDGET_FACTOR = 20;

/** The calling thread's id on Linux (`/proc/thread-self` → `<pid>/task/<tid>`), 0 elsewhere. */
export function currentThreadId(): number {
  if (process.platform !== 'linux') return 0;
  try {
    const tid = Number(fs.readlinkSync('/proc/thread-self').split('/')[2]);
    return Number.isSafeInteger(tid) && tid > 0 ? tid : 0;
  } catch {
    return 0;
  }
}

function pathOf(tid: number, source: CpuSource): string {
  return `/proc/self/task/${tid}/${source === CpuSource.schedstat ? 'schedstat' : 'stat'}`;
}

/** Milliseconds of CPU in the text of a `schedstat` or `stat` file, NaN if it does not parse. */
export function parseCpuMs(text: string, source: CpuSource): number {
  if (source === CpuSource.schedstat) return Number(text.slice(0, text.indexOf(' '))) / 1e6;
  // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // Fields 14 and 15 of stat(5), utime and stime; fields[0] is field 3.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/**
 * Reads the CPU time of thread `tid` of this process, from the first source
 * that gives a number; one file stays open for repeated reads (a filter
 * thread reads its own at each call into the guest).
 */
export class ThreadCpuClock {
  readonly tid: number;
  readonly source: CpuSource;
  readonly #fd: number;
  readonly #buffer = Buffer.alloc(512);

  constructor(tid: number) {
    this.tid = tid;
    let source: CpuSource = CpuSource.none;
    let fd = -1;
    if (tid > 0)
      for (const candidate of [CpuSource.schedstat, CpuSource.stat]) {
        try {
          fd = fs.openSync(pathOf(tid, candidate), 'r');
        } catch {
          continue;
        }
        source = candidate;
        if (Number.isFinite(this.#readFrom(fd, candidate))) break;
        fs.closeSync(fd);
        fd = -1;
        source = CpuSource.none;
      }
    this.source = source;
    this.#fd = fd;
  }

  #readFrom(fd: number, source: CpuSource): number {
    const length = fs.readSync(fd, this.#buffer, 0, this.#buffer.length, 0);
    return parseCpuMs(this.#buffer.toString('latin1', 0, length), source);
  }

  /** Milliseconds of CPU the thread has run, NaN without a source. */
  readMs(): number {
    return this.source === CpuSource.none ? Number.NaN : this.#readFrom(this.#fd, this.source);
  }

  close(): void {
    if (this.#fd >= 0) fs.closeSync(this.#fd);
  }
}

/**
 * Milliseconds of CPU thread `tid` has run, read from `source` once (the
 * watchdog, at a deadline); NaN if the thread is gone or there is no source.
 */
export function threadCpuMs(tid: number, source: CpuSource): number {
  if (tid <= 0 || source === CpuSource.none) return Number.NaN;
  try {
    return parseCpuMs(fs.readFileSync(pathOf(tid, source), 'latin1'), source);
  } catch {
    return Number.NaN;
  }
}

/** How a call, or a job, stands against its budget when the watchdog looks. */
export type BudgetVerdict =
  | { readonly over: false; readonly recheckInMs: number }
  | { readonly over: true; readonly reason: 'cpu' | 'wall' };

/**
 * The watchdog's rule. With a CPU reading (`cpuMs` not NaN), something is
 * over budget once its thread has run `budgetMs` of CPU since it started, or
 * it has taken WALL_BUDGET_FACTOR times that in wall time; otherwise look
 * again when it could first be over (a thread runs at most 1 ms of CPU per
 * ms). Without one, the budget is wall time.
 */
export function budgetVerdict(wallMs: number, cpuMs: number, budgetMs: number): BudgetVerdict {
  if (Number.isNaN(cpuMs)) {
    return wallMs >= budgetMs
      ? { over: true, reason: 'wall' }
      : { over: false, recheckInMs: budgetMs - wallMs };
  }
  if (cpuMs >= budgetMs) return { over: true, reason: 'cpu' };
  const wallBudgetMs = budgetMs * WALL_BUDGET_FACTOR;
  if (wallMs >= wallBudgetMs) return { over: true, reason: 'wall' };
  return { over: false, recheckInMs: Math.min(budgetMs - cpuMs, wallBudgetMs - wallMs) };
}
