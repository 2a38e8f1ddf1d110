/**
 * Why a suite was skipped, told to the end-of-run summary
 * (test/setup/skip-summary-reporter.js). The global setup names a folder in
 * KEYWARD_TEST_SKIP_DIR; each record is one JSON line in a file per worker process.
 */
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';

export const SKIP_DIR_VARIABLE = 'KEYWARD_TEST_SKIP_DIR';

/** Records that `suite` (in the running test file) is skipped, and why. */
export function recordSkip(suite: string, reason: string): void {
  const dir = process.env[SKIP_DIR_VARIABLE];
  if (!dir) return; // run without the global setup: the console warning is all there is
  const testPath = expect.getState().testPath ?? '';
  appendFileSync(join(dir, `${process.pid}.jsonl`), `${JSON.stringify({ testPath, suite, reason })}\n`);
}
