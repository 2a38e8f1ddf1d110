/**
 * `npm run docs:config` writes docs/configuration.md from the settings table
 * (src/config/settings.ts); `npm run docs:check` (with --check) fails when it is stale.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CONFIGURATION_DOC, renderConfigurationDoc } from '../src/config/doc';

const target = resolve(__dirname, '..', CONFIGURATION_DOC);
const expected = renderConfigurationDoc();

if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {
    // missing: stale
  }
  if (current !== expected) {
    console.error(`${CONFIGURATION_DOC} is stale: run npm run docs:config and commit it`);
    process.exit(1);
  }
  console.log(`${CONFIGURATION_DOC} is up to date`);
} else {
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, expected);
  console.log(`wrote ${CONFIGURATION_DOC}`);
}
