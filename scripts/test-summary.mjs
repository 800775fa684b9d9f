// Prints vitest's JSON report as one plain closing line: "N passed, N failed, N skipped".
import fs from 'node:fs';

const file = process.argv[2] ?? 'test-results.json';
const report = JSON.parse(fs.readFileSync(file, 'utf8'));
const skipped = report.numPendingTests + report.numTodoTests;
process.stdout.write(
  `${report.numPassedTests} passed, ${report.numFailedTests} failed, ${skipped} skipped\n`,
);
process.exitCode = report.numFailedTests > 0 || report.numPassedTests === 0 ? 1 : 0;
