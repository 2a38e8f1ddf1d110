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
  const text = secret.toString('hex') + '\n';
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, text, { mode: 0o600 });
  chmodSync(temporary, 0o600);
  try {
    linkSync(temporary, file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      const stored = storedHashSecret(file);
      if (!stored) throw new Error(`${file} disappeared while it was being created`, { cause: e });
      return stored;
    }
    // A filesystem without hard links: create the file itself, exclusively.
    writeFileSync(file, text, { mode: 0o600, flag: 'wx' });
    chmodSync(file, 0o600);
  } finally {
    unlinkSync(temporary);
  }
  return undefined;
}

/** Creates what `config` needs on disk and returns it with its hash secret. `env` names the variables in errors. */
export function provision(config: LoadedConfig, env: Env = process.env): Config {
  const { database } = config;
  const databaseFile = database.kind === 'sqlite' && database.path !== ':memory:' ? database.path : undefined;
  if (databaseFile) mkdirSync(dirname(databaseFile), { recursive: true });
  if (config.hashSecretSource !== 'unset') return config;
  const generated = randomBytes(32);
  const stored = databaseFile ? storeHashSecret(secretFileFor(databaseFile), generated) : undefined;
  if (stored) checkPreviousDiffers(config.hashSecretPrevious, stored, env);
  return { ...config, hashSecret: stored ?? generated, hashSecretSource: stored ? 'stored' : 'generated' };
}
