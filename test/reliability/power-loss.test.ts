/**
 * Power loss (issue 7; RELIABILITY.md D2), the log alone. A power loss drops every write since
 * the last sync; a SIGKILL alone does not (the page cache survives the process), so the check
 * runs the native power-loss model (native/src/durable_image.h): a child process
 * (test/log/fixtures/append-until-power-loss.mjs) starts it on the log directory, opens the log
 * there — recovery runs under the model too — and appends, 64 KiB segments so it rolls every few
 * dozen batches (new files, renames, directory fsyncs). It dies by SIGKILL: inside a sync the
 * model picks (that sync is then torn, sector by sector), at a random moment of the appends, or
 * while the log opens. The disk the next boot sees is written from the model's image
 * (`copyDurableImage`: durable listings and bytes only), and is where the next child starts. A
 * scratch copy of it is opened with the log's normal open and recovery, and checked:
 *
 * - the log opens, not failed;
 * - every acknowledged batch is there and intact (its offsets, its payload), and so is every
 *   batch an earlier check found in the log (a batch recovery kept and served stays);
 * - no half-written or foreign batch is visible: every batch read (CRC-verified) is one the child
 *   appended, whole, at the offsets it was given; offsets run contiguous from 0 to the end. A
 *   batch's size and record count follow from its offset alone, so a stale batch an earlier life
 *   left on disk lines up exactly with a later life's batches, and shows if recovery lets it back;
 * - the log accepts an append after, and reads it back.
 *
 * Half the cycles append under the `always` policy (an ack is an append that resolved), a
 * quarter under `interval` and a quarter under `never` (an ack is a `flush()` that resolved: every
 * batch appended before it), so unacknowledged batches sit between acknowledged ones. It also
 * asserts that some appended batches were lost (the model drops writes). The first cycle that
 * goes wrong keeps its disks, image and the child's lines in $TMPDIR for inspection.
 *
 * CI: 20 cycles; EDDY_POWER_LOSS_CYCLES sets the number (the soak script passes 200),
 * EDDY_POWER_LOSS_SEED replays the policies, cut points and tears (printed and recorded; the
 * moment of a timed SIGKILL is not replayable).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PartitionLog, isStorageError, type FlushPolicy } from '../../src/log/index.js';
import { native } from '../../src/native/binding.js';
import { seededRandom } from '../helpers/random.js';
import { batchShape } from '../log/fixtures/payload.mjs';
import { payloadFor, readAll, type StoredBatch } from '../log/helpers.js';
import { useMemoryTempDirs } from './fuzz/broker-process.js';
import { countError, recordFault } from './report.js';

// tmpfs: the model tells files apart by inode and birth time, which tmpfs reports.
const tempDir = useMemoryTempDirs('power-loss');

const CYCLES = Number(process.env['EDDY_POWER_LOSS_CYCLES'] ?? 20);
const SEED = Number(process.env['EDDY_POWER_LOSS_SEED'] ?? Date.now() % 2 ** 31);
const SEGMENT = 64 * 1024;
const CHILD = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '..',
  'log',
  'fixtures',
  'append-until-power-loss.mjs',
);

/** A batch a child appended: where, and which payload. */
interface Appended {
  readonly baseOffset: number;
  readonly lastOffset: number;
  readonly seed: number;
}

interface ChildRun {
  readonly appended: Map<number, Appended>;
  /** Base offsets of the appends acknowledged (durable by the policy's promise). */
  readonly acked: Set<number>;
  /** The test's SIGKILL ended it, not the model's cut in a sync. */
  readonly killedByTest: boolean;
}

const payloadOf = (batch: Appended): Uint8Array =>
  payloadFor(batch.seed, batchShape(batch.baseOffset).payloadBytes);

/** Runs the child until its SIGKILL, `kill.afterMs` after it printed `kill.from`; rejects if it exits any other way. */
function runChild(
  dir: string,
  imageDir: string,
  options: {
    flushPolicy: FlushPolicy;
    inFlight: number;
    flushEvery: number;
    seedBase: number;
    cutAtSync?: number;
  },
  kill: { afterMs: number; from: 'image' | 'open' },
): Promise<ChildRun> {
  // What the child did goes to a file: its stdout writes queue up in the child once this process
  // reads slower than it writes, and die with it (batches on disk whose "append" line never came).
  const linesFile = `${imageDir}.lines`;
  const args = [CHILD, dir, imageDir, linesFile, JSON.stringify({ segmentBytes: SEGMENT, ...options })];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let killedByTest = false;
    let timer: NodeJS.Timeout | null = null;
    child.stdout.on('data', (chunk: Buffer) => {
      if (
        timer === null &&
        chunk
          .toString()
          .split('\n')
          .some((line) => line.split(' ')[0] === kill.from)
      ) {
        timer = setTimeout(() => {
          killedByTest = true;
          child.kill('SIGKILL');
        }, kill.afterMs);
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      if (signal !== 'SIGKILL') {
        reject(new Error(`power-loss child exited with ${code}: ${stderr}`));
        return;
      }
      const run: ChildRun = { appended: new Map(), acked: new Set(), killedByTest };
      let durableBelow = 0;
      const text = fs.existsSync(linesFile) ? fs.readFileSync(linesFile, 'utf8') : '';
      fs.rmSync(linesFile, { force: true });
      // A last line cut short by the kill is left out: it was not written whole before the append.
      for (const line of text.split('\n').slice(0, -1)) {
        const [kind, a, b, c] = line.split(' ');
        if (kind === 'append') {
          const batch = { baseOffset: Number(a), lastOffset: Number(b), seed: Number(c) };
          run.appended.set(batch.baseOffset, batch);
        } else if (kind === 'ack') {
          run.acked.add(Number(a));
        } else if (kind === 'durable') {
          durableBelow = Math.max(durableBelow, Number(a));
          for (const batch of run.appended.values())
            if (batch.lastOffset < durableBelow) run.acked.add(batch.baseOffset);
        }
      }
      resolve(run);
    });
  });
}

describe('reliability > power loss (log)', () => {
  it(
    `keeps every acknowledged batch and shows no half-written one after ${CYCLES} power cuts that drop every unsynced write`,
    { timeout: 60_000 + CYCLES * 4_000 },
    async () => {
      console.log(`power loss: seed ${SEED} (EDDY_POWER_LOSS_SEED replays it)`);
      const started = performance.now();
      const next = seededRandom(SEED);
      const base = tempDir();
      let disk = path.join(base, 'disk-0');
      fs.mkdirSync(disk);
      /** Every batch a check found in the log: those must stay, whatever happens next. */
      const known = new Map<number, Appended>();
      const problems: string[] = [];
      let kept: string | null = null;
      let cycles = 0;
      /** Every batch every child appended, by base offset: to name the life a foreign batch came from. */
      const history = new Map<number, (Appended & { cycle: number; acked: boolean })[]>();
      const errors: Record<string, number> = {};
      const recoveryMs: number[] = [];
      const totals = {
        acked: 0,
        lost: 0,
        torn: 0,
        unackedKept: 0,
        unackedLost: 0,
        cutTails: 0,
        inFlightSyncs: 0,
        sectorsLost: 0,
        listingsLost: 0,
        segments: 0,
        cutInSync: 0,
      };
      const policies = new Map<FlushPolicy, number>();
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        const context = `cycle ${cycle} (seed ${SEED})`;
        cycles = cycle + 1;
        const roll = next();
        const flushPolicy: FlushPolicy = roll < 0.5 ? 'always' : roll < 0.75 ? 'interval' : 'never';
        policies.set(flushPolicy, (policies.get(flushPolicy) ?? 0) + 1);
        const image = path.join(base, `image-${cycle}`);
        // Where the power fails: in a sync the model picks (2 in 5: that sync is torn), at a random
        // moment of the appends (2 in 5), or while the log opens (1 in 5: recovery, its flushes, its
        // checkpoint). The test's kill stays as a deadline for a sync number the child never reaches.
        const mode = next();
        const cutAtSync = mode < 0.4 ? 1 + Math.floor(next() * 400) : undefined;
        const kill =
          mode < 0.4
            ? { afterMs: 5_000, from: 'image' as const }
            : mode < 0.8
              ? { afterMs: 20 + Math.floor(next() * 280), from: 'open' as const }
              : { afterMs: Math.floor(next() * 40), from: 'image' as const };
        const options = {
          flushPolicy,
          inFlight: 4,
          flushEvery: 8 + Math.floor(next() * 24),
          seedBase: (cycle + 1) * 1e7,
        };
        const run = await runChild(
          disk,
          image,
          cutAtSync === undefined ? options : { ...options, cutAtSync },
          kill,
        );
        if (cutAtSync !== undefined && !run.killedByTest) totals.cutInSync++;
        const after = path.join(base, `disk-${cycle + 1}`);
        const copied = native.copyDurableImage(image, after, Math.floor(next() * 2 ** 31));
        totals.inFlightSyncs += copied.inFlightSyncs;
        totals.sectorsLost += copied.sectorsLost;
        totals.listingsLost += copied.listingsLost;
        const before = disk;
        disk = after;
        const problemsBefore = problems.length;
        // The first cycle that goes wrong keeps its disks, image and child's lines for inspection.
        const keepForInspection = (): void => {
          if (kept !== null) return;
          kept = path.join(os.tmpdir(), `eddy-power-loss-${SEED}-cycle-${cycle}`);
          fs.rmSync(kept, { recursive: true, force: true });
          for (const [name, from] of [
            ['booted', before],
            ['image', image],
            ['after', after],
          ] as const)
            fs.cpSync(from, path.join(kept, name), { recursive: true });
          const lines = { appended: [...run.appended.values()], acked: [...run.acked], kill, cutAtSync };
          fs.writeFileSync(path.join(kept, 'child.json'), JSON.stringify(lines));
          console.log(`power loss: cycle ${cycle} kept for inspection in ${kept}`);
        };

        // The check opens a scratch copy: the next child must boot from the disk as the power cut left it.
        const scratch = path.join(base, `check-${cycle}`);
        fs.cpSync(disk, scratch, { recursive: true });
        const opened = performance.now();
        let log: PartitionLog;
        try {
          log = await PartitionLog.open(scratch, {
            segmentBytes: SEGMENT,
            flushPolicy: 'always',
            maintenanceIntervalMs: 0,
          });
        } catch (error) {
          problems.push(`${context}: the log does not open: ${String(error)}`);
          countError(errors, isStorageError(error) ? error.code : 'OPEN_FAILED');
          keepForInspection();
          break;
        }
        recoveryMs.push(performance.now() - opened);
        for (const batch of run.appended.values()) {
          const entry = { ...batch, cycle, acked: run.acked.has(batch.baseOffset) };
          history.set(batch.baseOffset, [...(history.get(batch.baseOffset) ?? []), entry]);
        }
        totals.cutTails += log.recovery.droppedBatches;
        totals.segments = log.segmentCount;
        const openedFailed = log.state.kind !== 'open';
        try {
          if (openedFailed) problems.push(`${context}: the log opened ${log.state.kind}`);
          const acked = [...run.acked].map((offset) => run.appended.get(offset) as Appended);
          totals.acked += acked.length;
          let stored: StoredBatch[];
          try {
            stored = readAll(log);
          } catch (error) {
            problems.push(`${context}: a read failed: ${String(error)}`);
            countError(errors, isStorageError(error) ? error.code : 'READ_FAILED');
            stored = [];
          }
          const found = new Map<number, Appended>();
          let expected = 0;
          for (const batch of stored) {
            if (batch.baseOffset !== expected)
              problems.push(`${context}: offsets jump from ${expected} to ${batch.baseOffset}`);
            expected = batch.baseOffset + batch.recordCount;
            // A batch an earlier check saw, else one this child appended at this offset.
            const origin = known.get(batch.baseOffset) ?? run.appended.get(batch.baseOffset);
            if (
              origin === undefined ||
              origin.lastOffset !== expected - 1 ||
              Buffer.compare(batch.payload, payloadOf(origin)) !== 0
            ) {
              totals.torn++;
              // Whose is it? An earlier child's batch at this offset that no check had seen came back.
              const earlier = (history.get(batch.baseOffset) ?? []).find(
                (other) => Buffer.compare(batch.payload, payloadOf(other)) === 0,
              );
              problems.push(
                `${context}: the batch at ${batch.baseOffset} (${batch.recordCount} records, ${batch.payload.length} bytes) is not one ` +
                  (earlier === undefined
                    ? 'that was appended there'
                    : `this child appended, nor in the log at the last check: cycle ${earlier.cycle} appended it (${earlier.acked ? '' : 'not '}acknowledged)`),
              );
              continue;
            }
            found.set(batch.baseOffset, origin);
          }
          if (expected !== log.endOffset)
            problems.push(`${context}: batches end at ${expected}, the log at ${log.endOffset}`);
          for (const batch of acked) {
            if (found.get(batch.baseOffset)?.seed === batch.seed) continue;
            totals.lost++;
            problems.push(`${context}: acknowledged batch ${batch.baseOffset} is missing`);
          }
          for (const batch of known.values()) {
            if (found.get(batch.baseOffset)?.seed !== batch.seed)
              problems.push(
                `${context}: batch ${batch.baseOffset}, in the log after an earlier power cut, is gone`,
              );
          }
          for (const batch of run.appended.values()) {
            if (run.acked.has(batch.baseOffset)) continue;
            if (found.get(batch.baseOffset)?.seed === batch.seed) totals.unackedKept++;
            else totals.unackedLost++;
          }
          known.clear();
          for (const [offset, batch] of found) known.set(offset, batch);

          // The log takes appends after, and they read back (a failed log refuses them: reported above).
          if (log.state.kind === 'open') {
            const probe = payloadFor(cycle, 512);
            const { baseOffset } = await log.append(probe, { recordCount: 1 });
            const back = readAll(log, baseOffset);
            if (back.length !== 1 || Buffer.compare(back[0]?.payload ?? new Uint8Array(), probe) !== 0)
              problems.push(`${context}: an append after recovery does not read back`);
          }
        } finally {
          await log.close();
          fs.rmSync(scratch, { recursive: true });
        }
        if (problems.length > problemsBefore) keepForInspection();
        fs.rmSync(image, { recursive: true });
        fs.rmSync(before, { recursive: true });
        // A failed log refuses the next child's appends: the run ends with what it found.
        if (openedFailed) break;
      }

      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const note =
        `seed ${SEED}; ${cycles} power cuts (every unsynced write dropped by the native model; ${totals.cutInSync} in a ` +
        `sync the model tore, the others by SIGKILL 20-300 ms after open or 0-40 ms into it), policies ${[...policies].map(([policy, count]) => `${policy} ${count}`).join(', ')}; ` +
        `64 KiB segments (${totals.segments} at the last check); ${totals.acked} batches acknowledged, ` +
        `${totals.lost} lost; ${totals.torn} torn or foreign batches visible; unacknowledged batches ` +
        `${totals.unackedLost} lost and ${totals.unackedKept} kept; ${totals.inFlightSyncs} syncs cut off ` +
        `mid-way (${totals.sectorsLost} sectors and ${totals.listingsLost} directory listings of them lost), ` +
        `${totals.cutTails} torn tails cut by recovery; ${problems.length} problems; ${seconds} s`;
      console.log(`power loss: ${note}`);
      recordFault({
        fault: 'power loss: every unsynced write dropped (log, native model)',
        runs: cycles,
        acknowledged: totals.acked,
        lost: totals.lost,
        duplicated: 0,
        recoveryMs,
        errors,
        note,
      });
      expect(problems).toEqual([]);
      expect(totals.acked).toBeGreaterThan(CYCLES * 5);
      // The model drops writes (else this would be a kill -9 test): some appended batches never made it.
      expect(totals.unackedLost).toBeGreaterThan(0);
    },
  );
});
