// `npm run reliability`: runs the fault checks of test/reliability/ (CI-sized unless the
// EDDY_* sizes in docs/reliability.md say otherwise), then prints the table of what they
// found (scripts/reliability-table.mjs). Exits non-zero if a check failed or lost data.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

const report = process.env['EDDY_RELIABILITY_REPORT'] || 'reliability-results.jsonl';
fs.rmSync(report, { force: true });
const env = { ...process.env, EDDY_RELIABILITY_REPORT: report };
const checks = spawnSync(
  'npx',
  ['vitest', 'run', '--project', 'reliability', 'test/reliability', ...process.argv.slice(2)],
  {
    stdio: 'inherit',
    env,
  },
);
const table = spawnSync(process.execPath, ['scripts/reliability-table.mjs', report], { stdio: 'inherit' });
process.exitCode = checks.status !== 0 ? (checks.status ?? 1) : (table.status ?? 1);
