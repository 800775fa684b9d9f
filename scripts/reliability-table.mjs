// Prints the rows the reliability checks recorded (test/reliability/report.ts) as a table:
// fault, runs, acknowledged, lost, duplicated, recovery time p50/max, errors by type.
import fs from 'node:fs';

const file = process.argv[2] ?? 'reliability-results.jsonl';
const rows = fs.existsSync(file)
  ? fs
      .readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line))
  : [];

function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const ms = (value) => (value === null ? '–' : `${Math.round(value)} ms`);
const header = [
  'fault',
  'runs',
  'acknowledged',
  'lost',
  'duplicated',
  'recovery p50',
  'recovery max',
  'errors by type',
];
const table = rows.map((row) => [
  row.fault,
  String(row.runs),
  String(row.acknowledged),
  row.lossAllowed ? `${row.lost} (allowed)` : String(row.lost),
  String(row.duplicated),
  ms(percentile(row.recoveryMs, 50)),
  ms(row.recoveryMs.length === 0 ? null : Math.max(...row.recoveryMs)),
  Object.entries(row.errors)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, count]) => `${name} ${count}`)
    .join(', ') || '–',
]);
process.stdout.write(
  `| ${header.join(' | ')} |\n|${header.map((_, i) => (i === 0 || i === 7 ? '---' : '---:')).join('|')}|\n`,
);
for (const cells of table) process.stdout.write(`| ${cells.join(' | ')} |\n`);
for (const row of rows) if (row.note) process.stdout.write(`\n- ${row.fault}: ${row.note}`);
if (rows.some((row) => row.note)) process.stdout.write('\n');
if (rows.length === 0) process.stdout.write(`(no rows in ${file})\n`);
process.exitCode = rows.some((row) => row.lost > 0 && !row.lossAllowed) ? 1 : 0;
