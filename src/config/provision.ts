/**
 * The files `serve` and `migrate` need before they start, which loadConfig only reads:
 * the SQLite database's folder and, when no hash secret is configured or stored, a
 * generated one stored beside the database (mode 0600).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, linkSync, mkdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { checkPreviousDiffers, secretFileFor, storedHashSecret } from './load';
import type { Env } from './read';
import type { Config, LoadedConfig } from './types';

/**
 * Stores `secret` in `file` unless a secret is there already (another process stored
 * it first), which is then returned instead. The file appears complete or not at all.
 */
function storeHashSecret(file: string, secret: Buffer): Buffer | undefined {
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, secret.toString('hex') + '\n', { mode: 0o600, flag: 'w' });
  chmodSync(temporary, 0o600);
  try {
    linkSync(temporary, file);
    return undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return storedHashSecret(file);
  } finally {
    unlinkSync(temporary);
  }
}

/** Creates what `config` needs on disk and returns it with its hash secret. `env` names the variables in errors. */
export function provision(config: LoadedConfig, env: Env = process.env): Config {
  const { database } = config;
  const file = database.kind === 'sqlite' && database.path !== ':memory:' ? database.path : undefined;
  if (file) mkdirSync(dirname(file), { recursive: true });
  if (config.hashSecretSource !== 'unset') return config;
  const generated = randomBytes(32);
  const stored = file ? storeHashSecret(secretFileFor(file), generated) : undefined;
  if (stored) checkPreviousDiffers(config.hashSecretPrevious, stored, env);
  return { ...config, hashSecret: stored ?? generated, hashSecretSource: stored ? 'stored' : 'generated' };
}
