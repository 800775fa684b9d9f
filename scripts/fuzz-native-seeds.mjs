// Seeds for the libFuzzer harnesses of native/fuzz/, cut from a real log: the project's
// PartitionLog (the built one in dist/, with the addon in build/) writes a few small segments,
// and each harness gets slices of their .log, .index and .timeindex files behind the
// parameter bytes it reads first (see the comment at the top of each harness).
//
//   node scripts/fuzz-native-seeds.mjs --out DIR     writes DIR/<harness>/<name>
//
// scripts/fuzz-native.sh runs it before fuzzing; native/fuzz/seeds/ holds a committed copy of
// its output (so a run without a build still starts from real files) and the inputs of bugs
// found, kept as regression seeds. Every seed stays under 4 KiB, libFuzzer's default length cap.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { out: { type: 'string' } } });
if (!values.out) {
  console.error('usage: node scripts/fuzz-native-seeds.mjs --out DIR');
  process.exit(2);
}
const out = path.resolve(values.out);
const { PartitionLog } = await import('../dist/src/log/index.js');

const FILE_HEADER_BYTES = 64;
const SEED_BYTES_MAX = 4096;

// A deterministic clock and payloads, so that regenerating gives the same batches (only each
// segment's random nonce, and the header CRCs over it, differ).
let clockMs = Date.UTC(2026, 10, 29);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eddy-fuzz-seeds-'));
try {
  const log = await PartitionLog.open(dir, {
    segmentBytes: 64 * 1024, // the smallest allowed: several segments from a few hundred batches
    indexIntervalBytes: 256, // dense indexes, so a few KiB of index hold many entries
    flushPolicy: 'never',
    maintenanceIntervalMs: 0,
    nowMs: () => clockMs,
  });
  for (let i = 0; i < 600; i++) {
    clockMs += 1 + (i % 7);
    const payload = Buffer.from(`{"event":${i},"data":"${'x'.repeat((i * 37) % 400)}"}`);
    await log.append(payload, {
      recordCount: 1 + (i % 5),
      key: i % 3 === 0 ? undefined : Buffer.from(`key-${i % 11}`),
      // Out-of-order timestamps now and then, as producers send them: the time index keeps the running maximum.
      firstTimestamp: clockMs - (i % 4 === 0 ? 500 : 0),
    });
  }
  await log.close();

  const bases = fs
    .readdirSync(dir)
    .filter((name) => /^\d{20}\.log$/.test(name))
    .map((name) => name.slice(0, 20))
    .sort();
  let written = 0;
  const write = (harness, name, bytes) => {
    if (bytes.length > SEED_BYTES_MAX) throw new Error(`seed ${harness}/${name} is ${bytes.length} bytes`);
    fs.mkdirSync(path.join(out, harness), { recursive: true });
    fs.writeFileSync(path.join(out, harness, name), bytes);
    written++;
  };
  // Bases are zero-padded to 20 digits; the seeds are named by the number itself.
  for (const base of bases.slice(0, 3)) {
    const segment = String(Number(base));
    const log = fs.readFileSync(path.join(dir, `${base}.log`));
    writeCrcSeeds(write, segment, log);
    for (const [kind, layoutByte, entryBytes] of [
      ['index', 0, 8],
      ['timeindex', 1, 12],
    ]) {
      const file = fs.readFileSync(path.join(dir, `${base}.${kind}`));
      writeEntrySeeds(write, `${segment}-${kind}`, file, layoutByte, entryBytes);
    }
  }
  console.log(`${written} seeds from ${bases.length} segments in ${out}`);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

function u32(value) {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32LE(value);
  return bytes;
}

function u64(value) {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64LE(BigInt(value));
  return bytes;
}

function f64(value) {
  const bytes = Buffer.alloc(8);
  bytes.writeDoubleLE(value);
  return bytes;
}

// crc32c_fuzz.cc: repeat, misalignment, seed (u32), split (u32), payload.
function writeCrcSeeds(write, segment, log) {
  const batchBytes = (at) => log.readUInt32LE(at + 8);
  const first = batchBytes(FILE_HEADER_BYTES);
  // The file header, then its first batch with the split where a reader splits it (at the
  // batch's CRC field), then a run of batches repeated past 3 x 8 KiB for the long blocks.
  write(
    'crc32c',
    `${segment}-file-header`,
    Buffer.concat([Buffer.from([0, 0]), u32(0), u32(60), log.subarray(0, 64)]),
  );
  write(
    'crc32c',
    `${segment}-first-batch`,
    Buffer.concat([
      Buffer.from([0, 3]),
      u32(0),
      u32(12),
      log.subarray(FILE_HEADER_BYTES, FILE_HEADER_BYTES + first),
    ]),
  );
  const run = log.subarray(FILE_HEADER_BYTES, FILE_HEADER_BYTES + 2048);
  write(
    'crc32c',
    `${segment}-batches-x16`,
    Buffer.concat([Buffer.from([15, 5]), u32(0x9e3779b9), u32(1000), run]),
  );
}

// The entries region of an index file, cut after its last non-zero entry plus one zero entry
// (where CountValid stops), and the number of entries before that zero one.
function entriesOf(file, entryBytes) {
  const region = file.subarray(FILE_HEADER_BYTES);
  let used = 0;
  for (let at = 0; at + entryBytes <= region.length; at += entryBytes) {
    if (region.subarray(at, at + entryBytes).some((byte) => byte !== 0)) used = at / entryBytes + 1;
  }
  const keep = Math.min(used + 1, Math.floor((SEED_BYTES_MAX - 64 - FILE_HEADER_BYTES) / entryBytes));
  return { entries: region.subarray(0, keep * entryBytes), used: Math.min(used, keep) };
}

function writeEntrySeeds(write, name, file, layoutByte, entryBytes) {
  const { entries, used } = entriesOf(file, entryBytes);
  const keyAt = (entry) =>
    layoutByte === 0
      ? BigInt(entries.readUInt32LE(entry * entryBytes))
      : entries.readBigInt64LE(entry * entryBytes);
  // count_valid_fuzz.cc: the layout byte, then the entries.
  write('count_valid', name, Buffer.concat([Buffer.from([layoutByte]), entries]));
  // floor_fuzz.cc: the layout byte, the key (a stored one, the middle entry's), then the entries.
  const middle = used > 0 ? keyAt(Math.floor(used / 2)) : 0n;
  write('floor', name, Buffer.concat([Buffer.from([layoutByte]), u64(BigInt.asUintN(64, middle)), entries]));
  // entries_call_fuzz.cc: flags, start, entryBytes, count, key, then the file as mapped (header
  // and entries), as IndexFile calls countEntries at open and floorEntry at each lookup.
  const mapped = file.subarray(0, FILE_HEADER_BYTES + entries.length);
  const capacity = entries.length / entryBytes;
  const call = (flags, count, key) =>
    Buffer.concat([
      Buffer.from([flags]),
      u64(FILE_HEADER_BYTES),
      u64(entryBytes),
      u64(count),
      f64(key),
      mapped,
    ]);
  write('entries_call', `${name}-count`, call(layoutByte, capacity, 0));
  write('entries_call', `${name}-floor`, call(layoutByte | 2, used, Number(middle)));
}
