import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import fs from 'node:fs';
import {
  FilterSandbox,
  filterLimits,
  isFilterError,
  isKept,
  type FilterErrorName,
  type FilterOutcome,
  type FilterSandboxOptions,
  type FilterStatus,
  type TransformOutcome,
} from '../../src/filters/wasm/index.js';
import { encodeEventBatch, isBrokerError, type EventFields } from '../../src/protocol/index.js';
import { buildExamples, exampleModule } from './fixtures/wasm-examples.js';
import { hostile } from './fixtures/wasm-modules.js';
import {
  CpuSource,
  ThreadCpuClock,
  WALL_BUDGET_FACTOR,
  budgetVerdict,
  parseCpuMs,
  threadCpuMs,
} from '../../src/filters/wasm/thread-time.js';
import { Worker } from 'node:worker_threads';

const encoder = new TextEncoder();

function events(count: number, amount = 500): EventFields[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `e-${i}`,
    source: '/test',
    type: 'com.example.order.created',
    data: encoder.encode(JSON.stringify({ amount })),
  }));
}

const block3 = encodeEventBatch(events(3));

const sandboxes: FilterSandbox[] = [];
function sandboxWith(options: FilterSandboxOptions = {}): FilterSandbox {
  const sandbox = new FilterSandbox(options);
  sandboxes.push(sandbox);
  return sandbox;
}

afterEach(async () => {
  await Promise.all(sandboxes.splice(0).map((sandbox) => sandbox.close()));
});

beforeAll(() => buildExamples(), 120_000);

/** The FilterError a promise rejects with (fails the test if it resolves or throws something else). */
async function filterError(promise: Promise<unknown>, name: FilterErrorName) {
  const error: unknown = await promise.then(
    () => null,
    (reason: unknown) => reason,
  );
  expect(isFilterError(error), String(error)).toBe(true);
  expect((error as { errorName: string }).errorName, String(error)).toBe(name);
  return error as Error & {
    errorName: FilterErrorName;
    action: string;
    eventIndex: number | null;
    filterId: string;
  };
}

describe('filters > wasm > sandbox > load', () => {
  it('refuses bytes that are not WebAssembly', async () => {
    const sandbox = sandboxWith();
    const error = await filterError(
      sandbox.load('junk', encoder.encode('not wasm'), { kind: 'filter' }),
      'FILTER_INVALID_MODULE',
    );
    expect(error.filterId).toBe('junk');
    expect(sandbox.status('junk')).toBeUndefined();
  });

  it('refuses a module above moduleBytesMax', async () => {
    const sandbox = sandboxWith({ limits: { moduleBytesMax: 100 } });
    const error = await filterError(
      sandbox.load('big', hostile.keepAll(), { kind: 'filter' }),
      'FILTER_INVALID_MODULE',
    );
    expect(error.message).toMatch(/above the limit of 100/);
  });

  it('refuses a WASI import and names it', async () => {
    const sandbox = sandboxWith();
    const error = await filterError(
      sandbox.load('wasi', hostile.wasi(), { kind: 'filter' }),
      'FILTER_IMPORT_NOT_ALLOWED',
    );
    expect(error.message).toContain('wasi_snapshot_preview1.fd_write');
  });

  it('refuses an ABI import of the wrong signature', async () => {
    const sandbox = sandboxWith();
    const error = await filterError(
      sandbox.load('sig', hostile.wrongAbortSignature(), { kind: 'filter' }),
      'FILTER_IMPORT_NOT_ALLOWED',
    );
    expect(error.message).toContain('broker_filter_v1.abort as (i32) -> ()');
  });

  it('refuses a module without the entry point of its kind, or with the wrong type', async () => {
    const sandbox = sandboxWith();
    const missing = await filterError(
      sandbox.load('a', hostile.noEntryPoint(), { kind: 'filter' }),
      'FILTER_EXPORT_MISSING',
    );
    expect(missing.message).toContain('eddy_filter');
    const asTransform = await filterError(
      sandbox.load('b', hostile.keepAll(), { kind: 'transform' }),
      'FILTER_EXPORT_MISSING',
    );
    expect(asTransform.message).toContain('eddy_transform');
    const wrongType = await filterError(
      sandbox.load('c', hostile.wrongEntrySignature(), { kind: 'filter' }),
      'FILTER_EXPORT_MISSING',
    );
    expect(wrongType.message).toContain('(i32, i32) -> (i32)');
  });

  it('refuses a memory without a maximum, or with one above the cap', async () => {
    const sandbox = sandboxWith();
    const unbounded = await filterError(
      sandbox.load('a', hostile.unboundedMemory(), { kind: 'filter' }),
      'FILTER_MEMORY_UNBOUNDED',
    );
    expect(unbounded.message).toContain('no maximum');
    const huge = await filterError(
      sandbox.load('b', hostile.hugeMemory(), { kind: 'filter' }),
      'FILTER_MEMORY_UNBOUNDED',
    );
    expect(huge.message).toContain('1024 pages, above the cap of 256');
  });

  it('gives a module that imports its memory one capped by the host', async () => {
    const sandbox = sandboxWith({ limits: { memoryPagesMax: 32 } });
    const status = await sandbox.load('imported', hostile.importedMemory(), { kind: 'filter' });
    expect(status.memory).toEqual({ imported: true, minimumPages: 2, maximumPages: 32 });
    const outcome = (await sandbox.run('imported', block3)) as FilterOutcome;
    expect(outcome.keptCount).toBe(3);
  });

  it('refuses a module built for another ABI version', async () => {
    const sandbox = sandboxWith();
    const error = await filterError(
      sandbox.load('v2', hostile.abiVersion2(), { kind: 'filter' }),
      'FILTER_INVALID_MODULE',
    );
    expect(error.message).toContain('ABI version 2');
  });

  it('refuses a module whose start function never returns, and keeps the others loaded', async () => {
    const sandbox = sandboxWith({ limits: { startTimeoutMs: 100 } });
    await sandbox.load('good', hostile.keepAll(), { kind: 'filter' });
    const thread = sandbox.threadId;
    const error = await filterError(
      sandbox.load('stuck', hostile.loopingStart(), { kind: 'filter' }),
      'FILTER_TIMEOUT',
    );
    expect(error.message).toContain('starting');
    expect(sandbox.status('stuck')).toBeUndefined();
    expect(sandbox.threadId).not.toBe(thread);
    expect(((await sandbox.run('good', block3)) as FilterOutcome).keptCount).toBe(3);
  });

  it('refuses a second module under an id already loaded', async () => {
    const sandbox = sandboxWith();
    await sandbox.load('f', hostile.keepAll(), { kind: 'filter' });
    await filterError(sandbox.load('f', hostile.keepAll(), { kind: 'filter' }), 'FILTER_ALREADY_LOADED');
  });

  it('throws TypeError for arguments of the wrong type', () => {
    const sandbox = sandboxWith();
    expect(() => sandbox.load('', hostile.keepAll(), { kind: 'filter' })).toThrow(TypeError);
    expect(() => sandbox.load('x', 'bytes' as unknown as Uint8Array, { kind: 'filter' })).toThrow(TypeError);
    expect(() => sandbox.load('x', hostile.keepAll(), { kind: 'map' as 'filter' })).toThrow(TypeError);
    expect(() => sandbox.run('x', [1, 2] as unknown as Uint8Array)).toThrow(TypeError);
  });
});

describe('filters > wasm > sandbox > time budget', () => {
  it('stops a filter that loops forever within its budget, quarantines it, and keeps serving other filters', async () => {
    const statuses: FilterStatus[] = [];
    const sandbox = sandboxWith({
      limits: { callTimeoutMs: 100 },
      onStatusChange: (status) => statuses.push(status),
    });
    await sandbox.load('loop', hostile.infiniteLoop(), { kind: 'filter' });
    await sandbox.load('amount', exampleModule('order-amount'), { kind: 'filter' });
    const thread = sandbox.threadId;
    const started = performance.now();
    const stuck = sandbox.run('loop', block3);
    // Queued behind the stuck batch: it must run on the new thread, unharmed.
    const behind = sandbox.run('amount', block3);
    const error = await filterError(stuck, 'FILTER_TIMEOUT');
    const elapsedMs = performance.now() - started;
    expect(elapsedMs).toBeGreaterThanOrEqual(100);
    expect(elapsedMs).toBeLessThan(1000);
    expect(error).toMatchObject({ filterId: 'loop', action: 'disable' });
    expect(((await behind) as FilterOutcome).keptCount).toBe(3);
    expect(sandbox.threadId).not.toBe(thread);
    expect(sandbox.restarts).toBe(1);
    expect(sandbox.status('loop')).toMatchObject({
      state: 'disabled',
      error: { errorName: 'FILTER_TIMEOUT' },
    });
    expect(statuses.at(-1)).toMatchObject({ id: 'loop', state: 'disabled' });
    await filterError(sandbox.run('loop', block3), 'FILTER_DISABLED');
    expect(((await sandbox.run('amount', block3)) as FilterOutcome).keptCount).toBe(3);
  });

  it('does not blame a filter whose answer waits while the main thread is busy', async () => {
    const sandbox = sandboxWith({ limits: { callTimeoutMs: 100 } });
    await sandbox.load('amount', exampleModule('order-amount'), { kind: 'filter' });
    const run = sandbox.run('amount', block3);
    const until = performance.now() + 400;
    while (performance.now() < until); // the watchdog timer fires late, after the batch finished
    expect(((await run) as FilterOutcome).keptCount).toBe(3);
    expect(sandbox.restarts).toBe(0);
  });
  it('stops one guest call past callTimeoutMs, long before the batch budget', async () => {
    const sandbox = sandboxWith({ limits: { callTimeoutMs: 50, batchTimeoutMs: 5000 } });
    await sandbox.load('loop', hostile.infiniteLoop(), { kind: 'filter' });
    const started = performance.now();
    const error = await filterError(sandbox.run('loop', block3), 'FILTER_TIMEOUT');
    expect(performance.now() - started).toBeLessThan(2500);
    expect(error.message).toMatch(/on one call, over its budget of 50 ms/);
  });

  it('quarantines a looping filter at its first kill: its later batches cost no thread', async () => {
    const sandbox = sandboxWith({ limits: { callTimeoutMs: 50 } });
    await sandbox.load('loop', hostile.infiniteLoop(), { kind: 'filter' });
    await sandbox.load('amount', exampleModule('order-amount'), { kind: 'filter' });
    const batches = Array.from({ length: 6 }, () => sandbox.run('loop', block3));
    await filterError(batches[0] as Promise<unknown>, 'FILTER_TIMEOUT');
    for (const later of batches.slice(1)) await filterError(later, 'FILTER_DISABLED');
    await filterError(sandbox.run('loop', block3), 'FILTER_DISABLED');
    expect(sandbox.restarts).toBe(1);
    expect(((await sandbox.run('amount', block3)) as FilterOutcome).keptCount).toBe(3);
  });

  it('hands the other filters to the spare thread started ahead, then starts another spare', async () => {
    const sandbox = sandboxWith({ limits: { callTimeoutMs: 50 } });
    expect(sandbox.spareThreadId).toBeNull(); // no filter, no spare
    await sandbox.load('loop', hostile.infiniteLoop(), { kind: 'filter' });
    await sandbox.load('amount', exampleModule('order-amount'), { kind: 'filter' });
    const spare = sandbox.spareThreadId;
    expect(spare).not.toBeNull();
    await filterError(sandbox.run('loop', block3), 'FILTER_TIMEOUT');
    expect(sandbox.threadId).toBe(spare);
    expect(((await sandbox.run('amount', block3)) as FilterOutcome).keptCount).toBe(3);
    const until = performance.now() + 5000;
    while (sandbox.spareThreadId === null && performance.now() < until)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(sandbox.spareThreadId).not.toBeNull();
    expect(sandbox.spareThreadId).not.toBe(spare);
  });
});

describe('filters > wasm > sandbox > time budget > CPU time', () => {
  it.runIf(process.platform === 'linux')(
    'kills a looping filter once its thread has run its budget of CPU, and says how much it ran',
    async () => {
      const sandbox = sandboxWith({ limits: { callTimeoutMs: 50, batchTimeoutMs: 5000 } });
      await sandbox.load('loop', hostile.infiniteLoop(), { kind: 'filter' });
      const started = performance.now();
      const error = await filterError(sandbox.run('loop', block3), 'FILTER_TIMEOUT');
      const match =
        /ran (\d+) ms of CPU \((\d+) ms of wall time\) on one call, over its budget of 50 ms/.exec(
          error.message,
        );
      expect(match, error.message).not.toBeNull();
      const [cpuMs, wallMs] = [Number(match?.[1]), Number(match?.[2])];
      expect(cpuMs).toBeGreaterThanOrEqual(50 - 10); // stat counts in 10 ms ticks
      expect(cpuMs).toBeLessThanOrEqual(wallMs + 10);
      expect(performance.now() - started).toBeLessThan(50 * WALL_BUDGET_FACTOR + 1500);
    },
  );

  it.runIf(process.platform === 'linux')(
    "reads a thread's CPU time: it grows while the thread runs and stands still while it waits",
    async () => {
      const signal = new Int32Array(new SharedArrayBuffer(8));
      const worker = new Worker(
        `const { parentPort, workerData } = require('node:worker_threads');
         const fs = require('node:fs');
         const signal = workerData;
         parentPort.postMessage(Number(fs.readlinkSync('/proc/thread-self').split('/')[2]));
         Atomics.wait(signal, 0, 0); // 1: spin for 150 ms
         const until = performance.now() + 150;
         while (performance.now() < until);
         Atomics.store(signal, 1, 1);
         Atomics.notify(signal, 1);
         Atomics.wait(signal, 0, 1); // waits, running nothing, until told to end`,
        { eval: true, workerData: signal },
      );
      try {
        const tid = await new Promise<number>((resolve) => worker.once('message', resolve));
        const clock = new ThreadCpuClock(tid);
        expect(clock.source).not.toBe(CpuSource.none);
        const waiting = clock.readMs();
        await new Promise((resolve) => setTimeout(resolve, 200));
        const waited = clock.readMs();
        expect(waited - waiting).toBeLessThan(20);
        Atomics.store(signal, 0, 1);
        Atomics.notify(signal, 0);
        while (Atomics.load(signal, 1) === 0) await new Promise((resolve) => setTimeout(resolve, 10));
        const spun = clock.readMs();
        // Not all 150 ms: on a busy machine the spinning thread itself waits for a core.
        expect(spun - waited).toBeGreaterThanOrEqual(10);
        expect(spun - waited).toBeLessThanOrEqual(150 + 50);
        expect(threadCpuMs(tid, clock.source)).toBeGreaterThanOrEqual(spun);
        clock.close();
      } finally {
        Atomics.store(signal, 0, 2);
        Atomics.notify(signal, 0);
        await worker.terminate();
      }
      expect(threadCpuMs(2 ** 30, CpuSource.schedstat)).toBeNaN(); // no such thread
    },
  );

  it('reads run time from schedstat and utime + stime from stat, whatever the command name', () => {
    expect(parseCpuMs('427618860 558841014 154\n', CpuSource.schedstat)).toBeCloseTo(427.61886);
    const stat =
      '6431 (node (a) b) R 6428 6428 4627 0 -1 4194304 2584 0 0 0 43 39 0 0 20 0 11 0 576432 0 0\n';
    expect(parseCpuMs(stat, CpuSource.stat)).toBe(820);
  });

  it('does not stop a call that has waited past its budget without running it', () => {
    // Preempted: 400 ms on the clock, 12 ms on a CPU. Look again when 38 more ms could be run.
    expect(budgetVerdict(400, 12, 50)).toEqual({ over: false, recheckInMs: 38 });
  });

  it('stops a call once it has run its budget of CPU, however little wall time has passed', () => {
    expect(budgetVerdict(50, 50, 50)).toEqual({ over: true, reason: 'cpu' });
    expect(budgetVerdict(61, 60, 50)).toEqual({ over: true, reason: 'cpu' });
  });

  it('stops a call starved for WALL_BUDGET_FACTOR times its budget, however little it ran', () => {
    expect(budgetVerdict(50 * WALL_BUDGET_FACTOR, 3, 50)).toEqual({ over: true, reason: 'wall' });
    // Nearly there: the next look is at the wall bound, not 47 ms later.
    expect(budgetVerdict(50 * WALL_BUDGET_FACTOR - 5, 3, 50)).toEqual({ over: false, recheckInMs: 5 });
  });

  it('keeps the budget in wall time where no CPU time can be read', () => {
    expect(budgetVerdict(49, Number.NaN, 50)).toEqual({ over: false, recheckInMs: 1 });
    expect(budgetVerdict(50, Number.NaN, 50)).toEqual({ over: true, reason: 'wall' });
  });
});

describe('filters > wasm > limits', () => {
  it('gives each guest call 50 ms and a batch 200 ms by default', () => {
    expect(filterLimits()).toMatchObject({ callTimeoutMs: 50, batchTimeoutMs: 200 });
  });

  it('refuses a call budget above the batch budget, or not a positive integer', () => {
    expect(() => filterLimits({ callTimeoutMs: 300 })).toThrow(/callTimeoutMs \(300\) must not exceed/);
    expect(filterLimits({ callTimeoutMs: 300, batchTimeoutMs: 300 }).callTimeoutMs).toBe(300);
    expect(() => filterLimits({ callTimeoutMs: 0 })).toThrow(RangeError);
    expect(() => filterLimits({ callTimeoutMs: 2.5 })).toThrow(RangeError);
  });
});

/** The nice value of thread `tid` of this process (Linux). */
function niceOf(tid: string | number): number {
  return Number(fs.readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]);
}

function threadNices(): number[] {
  return fs.readdirSync('/proc/self/task').map(niceOf);
}

describe('filters > wasm > sandbox > thread priority', () => {
  it.runIf(process.platform === 'linux')(
    'runs the filter threads, spare included, at threadNice',
    async () => {
      const before = threadNices().filter((nice) => nice === 7).length;
      const own = niceOf(process.pid); // 0, or what the suite was started under (nice -n 5 npx vitest)
      const sandbox = sandboxWith({ threadNice: 7 });
      await sandbox.load('amount', exampleModule('order-amount'), { kind: 'filter' });
      await sandbox.run('amount', block3);
      const until = performance.now() + 5000;
      while (threadNices().filter((nice) => nice === 7).length < before + 2 && performance.now() < until)
        await new Promise((resolve) => setTimeout(resolve, 50));
      expect(threadNices().filter((nice) => nice === 7).length).toBe(before + 2);
      expect(niceOf(process.pid)).toBe(own); // the thread serving everyone else keeps its priority
    },
  );

  it('refuses a threadNice outside 0–19', () => {
    expect(() => new FilterSandbox({ threadNice: 20 })).toThrow(RangeError);
    expect(() => new FilterSandbox({ threadNice: -1 })).toThrow(RangeError);
  });
});

describe('filters > wasm > sandbox > traps', () => {
  it('skips the events of a guest that traps on every call, then disables it after consecutive failures', async () => {
    const sandbox = sandboxWith({ limits: { consecutiveFailuresMax: 5 } });
    await sandbox.load('trap', hostile.trapAlways(), { kind: 'filter', onTrap: 'skip' });
    const outcome = (await sandbox.run('trap', block3)) as FilterOutcome;
    expect(outcome.keptCount).toBe(0);
    expect(
      outcome.failures.map((failure) => [failure.index, failure.action, failure.error.errorName]),
    ).toEqual([
      [0, 'skip', 'FILTER_TRAP'],
      [1, 'skip', 'FILTER_TRAP'],
      [2, 'skip', 'FILTER_TRAP'],
    ]);
    expect(outcome.failures[0]!.error.message).toContain('unreachable');
    const error = await filterError(sandbox.run('trap', block3), 'FILTER_TRAP');
    expect(error).toMatchObject({ action: 'disable', eventIndex: 1 });
    expect(error.message).toContain('5 events in a row failed');
    expect(sandbox.status('trap')).toMatchObject({ state: 'disabled', failedEvents: 5 });
  });

  it('dead-letters only the event the guest traps on and keeps the rest of the batch', async () => {
    const sandbox = sandboxWith({ limits: { consecutiveFailuresMax: 2 } });
    await sandbox.load('flaky', hostile.trapOnEvent(1), { kind: 'filter', onTrap: 'dead-letter' });
    for (let round = 0; round < 4; round++) {
      const outcome = (await sandbox.run('flaky', block3)) as FilterOutcome;
      expect([0, 1, 2].map((i) => isKept(outcome.keep, i))).toEqual([true, false, true]);
      expect(outcome.failures).toHaveLength(1);
      expect(outcome.failures[0]).toMatchObject({
        index: 1,
        action: 'dead-letter',
        error: { eventIndex: 1 },
      });
    }
    expect(sandbox.status('flaky')?.state).toBe('active');
  });

  it('disables a filter at its first trap under the disable policy', async () => {
    const statuses: FilterStatus[] = [];
    const sandbox = sandboxWith({ onStatusChange: (status) => statuses.push(status) });
    await sandbox.load('trap', hostile.trapAlways(), { kind: 'filter', onTrap: 'disable' });
    const error = await filterError(sandbox.run('trap', block3), 'FILTER_TRAP');
    expect(error).toMatchObject({ action: 'disable', eventIndex: 0 });
    expect(statuses.map((status) => status.state)).toEqual(['active', 'disabled']);
    const disabled = await filterError(sandbox.run('trap', block3), 'FILTER_DISABLED');
    expect(disabled.cause).toBe(error);
  });

  it('contains stack overflow, division by zero and out-of-bounds access as FILTER_TRAP', async () => {
    const sandbox = sandboxWith();
    const cases = {
      recurse: /stack/,
      divideByZero: /divide by zero/,
      loadOutOfBounds: /memory access out of bounds/,
    };
    for (const [name, reason] of Object.entries(cases)) {
      await sandbox.load(name, hostile[name as keyof typeof cases](), { kind: 'filter' });
      const outcome = (await sandbox.run(name, encodeEventBatch(events(1)))) as FilterOutcome;
      expect(outcome.failures[0]!.error.errorName, name).toBe('FILTER_TRAP');
      expect(outcome.failures[0]!.error.message, name).toMatch(reason);
    }
    expect(sandbox.restarts).toBe(0);
  });

  it('reports the reason a guest aborts with', async () => {
    const sandbox = sandboxWith();
    await sandbox.load('abort', hostile.abortAlways('amount is not a number'), { kind: 'filter' });
    const outcome = (await sandbox.run('abort', encodeEventBatch(events(1)))) as FilterOutcome;
    expect(outcome.failures[0]!.error.message).toContain('the guest aborted: amount is not a number');
  });

  it('passes on what a guest logs', async () => {
    const lines: string[] = [];
    const sandbox = sandboxWith({ onLog: (id, level, text) => lines.push(`${id} ${level} ${text}`) });
    await sandbox.load('chatty', hostile.logs('hello from the guest'), { kind: 'filter' });
    await sandbox.run('chatty', block3);
    await sandbox.run('chatty', block3);
    expect(lines).toEqual(['chatty info hello from the guest', 'chatty info hello from the guest']);
  });
});

describe('filters > wasm > sandbox > guest results', () => {
  it('refuses a keep bitmap outside guest memory', async () => {
    const sandbox = sandboxWith();
    await sandbox.load('oob', hostile.filterOutOfBounds(), { kind: 'filter' });
    const outcome = (await sandbox.run('oob', block3)) as FilterOutcome;
    expect(outcome.failures.map((failure) => failure.error.errorName)).toEqual(
      Array(3).fill('FILTER_BAD_POINTER'),
    );
    expect(outcome.keptCount).toBe(0);
  });

  it('refuses an input address where the block does not fit', async () => {
    const sandbox = sandboxWith();
    await sandbox.load('oob', hostile.inputOutOfBounds(), { kind: 'filter' });
    const outcome = (await sandbox.run('oob', block3)) as FilterOutcome;
    expect(outcome.failures[0]!.error.message).toMatch(
      /eddy_input returned \d+: .* overrun the guest memory/,
    );
  });

  it('refuses an output block outside guest memory', async () => {
    const sandbox = sandboxWith();
    await sandbox.load('oob', hostile.transformOutOfBounds(), { kind: 'transform' });
    const outcome = (await sandbox.run('oob', block3)) as TransformOutcome;
    expect(outcome.failures.map((failure) => failure.error.errorName)).toEqual(
      Array(3).fill('FILTER_BAD_POINTER'),
    );
    expect(outcome.outputCount).toBe(0);
  });

  it('refuses an output block that is not a well-formed EventBatch', async () => {
    const sandbox = sandboxWith();
    await sandbox.load('garbage', hostile.transformGarbage(), { kind: 'transform' });
    const outcome = (await sandbox.run('garbage', block3)) as TransformOutcome;
    expect(outcome.failures[0]!.error).toMatchObject({ errorName: 'FILTER_BAD_OUTPUT' });
    expect(outcome.failures[0]!.error.message).toContain('malformed event block');
  });

  it('stops a guest that grows its memory past the cap', async () => {
    const sandbox = sandboxWith();
    await sandbox.load('grow', hostile.growForever(16), { kind: 'filter' });
    const outcome = (await sandbox.run('grow', block3)) as FilterOutcome;
    expect(outcome.failures[0]!.error).toMatchObject({ errorName: 'FILTER_MEMORY_EXCEEDED' });
    expect(outcome.failures[0]!.error.message).toContain(`at ${16 * 65536} of ${16 * 65536} bytes`);
  });

  it('refuses a block it cannot read, without blaming the filter', async () => {
    const sandbox = sandboxWith();
    await sandbox.load('amount', exampleModule('order-amount'), { kind: 'filter' });
    const error: unknown = await sandbox
      .run('amount', new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]))
      .catch((reason: unknown) => reason);
    expect(isBrokerError(error, 'MALFORMED_FRAME')).toBe(true);
    const inflated: unknown = await sandbox
      .run('amount', new Uint8Array([0xff, 0xff, 0xff, 0x7f, 0]), { compression: 'lz4' })
      .catch((reason: unknown) => reason);
    expect(isBrokerError(inflated, 'BATCH_TOO_LARGE')).toBe(true);
    expect(sandbox.status('amount')?.state).toBe('active');
  });
});

describe('filters > wasm > sandbox > lifecycle', () => {
  it('forgets an unloaded filter', async () => {
    const sandbox = sandboxWith();
    await sandbox.load('f', hostile.keepAll(), { kind: 'filter' });
    expect(sandbox.list().map((status) => status.id)).toEqual(['f']);
    await sandbox.unload('f');
    await filterError(sandbox.run('f', block3), 'FILTER_NOT_FOUND');
    await filterError(sandbox.unload('f'), 'FILTER_NOT_FOUND');
    await sandbox.load('f', hostile.keepAll(), { kind: 'filter' });
  });

  it('drops a filter unloaded while it loads, and loads the id afresh afterwards', async () => {
    const sandbox = sandboxWith();
    const loading = sandbox.load('f', hostile.keepAll(), { kind: 'filter' });
    await sandbox.unload('f');
    await filterError(loading, 'FILTER_NOT_FOUND');
    await sandbox.load('f', hostile.trapAlways(), { kind: 'filter' });
    const outcome = (await sandbox.run('f', block3)) as FilterOutcome;
    expect(outcome.failures).toHaveLength(3);
  });

  it('counts batches, events and failures per filter', async () => {
    const sandbox = sandboxWith();
    await sandbox.load('f', hostile.trapOnEvent(2), { kind: 'filter' });
    await sandbox.run('f', block3);
    await sandbox.run('f', encodeEventBatch(events(2)));
    expect(sandbox.status('f')).toMatchObject({
      batches: 2,
      events: 5,
      failedEvents: 1,
      kind: 'filter',
      onTrap: 'skip',
    });
  });

  it('fails batches after close', async () => {
    const sandbox = sandboxWith();
    await sandbox.load('f', hostile.keepAll(), { kind: 'filter' });
    await sandbox.close();
    await filterError(sandbox.run('f', block3), 'FILTER_SANDBOX_CLOSED');
  });
});
