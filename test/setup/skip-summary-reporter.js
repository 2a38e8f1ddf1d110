// Ends the run with one line naming every skipped suite and why, so a skip cannot scroll
// away. Reasons come from test/support/skips.ts (a folder named by KEYWARD_TEST_SKIP_DIR);
// a file with skipped tests and no recorded reason is listed as "no reason given".
const { readdirSync, readFileSync, rmSync } = require('node:fs');
const { basename, join } = require('node:path');

const NO_REASON = 'no reason given: describe.skip or it.skip in the file';

function recordedSkips() {
  const dir = process.env.KEYWARD_TEST_SKIP_DIR;
  if (!dir) return [];
  const records = [];
  try {
    for (const file of readdirSync(dir)) {
      for (const line of readFileSync(join(dir, file), 'utf8').split('\n')) if (line) records.push(JSON.parse(line));
    }
  } catch {
    // no folder: nothing recorded
  }
  return records;
}

function suiteName(testPath) {
  return basename(testPath).replace(/\.test\.[jt]s$/, '');
}

class SkipSummaryReporter {
  onRunComplete(_contexts, results) {
    const records = recordedSkips();
    const reasonsByPath = new Map();
    for (const r of records) {
      if (!reasonsByPath.has(r.testPath)) reasonsByPath.set(r.testPath, new Set());
      reasonsByPath.get(r.testPath).add(r.reason);
    }
    /** reason -> suite names */
    const groups = new Map();
    const add = (reason, name) => {
      if (!groups.has(reason)) groups.set(reason, []);
      groups.get(reason).push(name);
    };
    const seen = new Set();
    for (const file of results.testResults) {
      const skipped = file.numPendingTests + file.numTodoTests;
      const reasons = reasonsByPath.get(file.testFilePath);
      if (skipped === 0 && !reasons) continue;
      seen.add(file.testFilePath);
      const total = skipped + file.numPassingTests + file.numFailingTests;
      const name = skipped < total ? `${suiteName(file.testFilePath)} (${skipped} of ${total} tests)` : suiteName(file.testFilePath);
      for (const reason of reasons ?? [NO_REASON]) add(reason, name);
    }
    // Recorded by a file whose results are missing (it failed to run): still named.
    for (const [path, reasons] of reasonsByPath) if (!seen.has(path)) for (const reason of reasons) add(reason, suiteName(path));
    const dir = process.env.KEYWARD_TEST_SKIP_DIR;
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (groups.size === 0) return;
    const count = new Set([...groups.values()].flat()).size;
    const parts = [...groups].map(([reason, names]) => `(${reason}): ${names.sort().join(', ')}`);
    const line = `SKIPPED: ${count} suite${count === 1 ? '' : 's'} ${parts.join('; ')}`;
    // Jest's summary reporter always runs after custom ones: the line is written at exit,
    // after everything else (stderr writes are synchronous on Linux files, pipes and TTYs).
    process.once('exit', () => process.stderr.write(`\n${line}\n`));
  }
}

module.exports = SkipSummaryReporter;
