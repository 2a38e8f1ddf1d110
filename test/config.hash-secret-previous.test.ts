/**
 * KEYWARD_HASH_SECRET_PREVIOUS / _FILE: validated like the primary (hex or base64, at
 * least 32 bytes), never both forms, never equal to the primary; each error names the
 * variable and never echoes the secret. A bad one leaves no generated secret behind.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { loadConfig, secretFileFor } from '../src/config';
import { configErrorOf as errorOf } from './support/config';

const PG = 'postgres://keyward@127.0.0.1:5432/keyward';
const A = randomBytes(32);
const B = randomBytes(32);

describe('KEYWARD_HASH_SECRET_PREVIOUS', () => {
  it('is optional, and read as hex, base64 or from a file', () => {
    expect(loadConfig({ KEYWARD_DATABASE_URL: PG, KEYWARD_HASH_SECRET: B.toString('hex') }).hashSecretPrevious).toBeUndefined();
    const hex = loadConfig({
      KEYWARD_DATABASE_URL: PG,
      KEYWARD_HASH_SECRET: B.toString('hex'),
      KEYWARD_HASH_SECRET_PREVIOUS: A.toString('hex'),
    });
    expect(hex.hashSecret?.equals(B)).toBe(true);
    expect(hex.hashSecretPrevious?.equals(A)).toBe(true);
    const b64 = loadConfig({
      KEYWARD_DATABASE_URL: PG,
      KEYWARD_HASH_SECRET: B.toString('hex'),
      KEYWARD_HASH_SECRET_PREVIOUS: A.toString('base64'),
    });
    expect(b64.hashSecretPrevious?.equals(A)).toBe(true);
    const file = join(mkdtempSync(join(tmpdir(), 'keyward-prev-')), 'previous.secret');
    writeFileSync(file, A.toString('hex') + '\n');
    const fromFile = loadConfig({
      KEYWARD_DATABASE_URL: PG,
      KEYWARD_HASH_SECRET: B.toString('hex'),
      KEYWARD_HASH_SECRET_PREVIOUS_FILE: file,
    });
    expect(fromFile.hashSecretPrevious?.equals(A)).toBe(true);
  });

  it('must decode to at least 32 bytes', () => {
    const short = randomBytes(31).toString('hex');
    const e = errorOf({ KEYWARD_DATABASE_URL: PG, KEYWARD_HASH_SECRET: B.toString('hex'), KEYWARD_HASH_SECRET_PREVIOUS: short });
    expect(e.variable).toBe('KEYWARD_HASH_SECRET_PREVIOUS');
    expect(e.message).toBe('KEYWARD_HASH_SECRET_PREVIOUS: must decode to at least 32 bytes, got 31');
    const bad = errorOf({
      KEYWARD_DATABASE_URL: PG,
      KEYWARD_HASH_SECRET: B.toString('hex'),
      KEYWARD_HASH_SECRET_PREVIOUS: 'not a secret!',
    });
    expect(bad.message).toBe('KEYWARD_HASH_SECRET_PREVIOUS: must be hex or base64');
  });

  it('must differ from the primary secret, in whatever encoding', () => {
    const e = errorOf({
      KEYWARD_DATABASE_URL: PG,
      KEYWARD_HASH_SECRET: A.toString('hex'),
      KEYWARD_HASH_SECRET_PREVIOUS: A.toString('base64'),
    });
    expect(e.variable).toBe('KEYWARD_HASH_SECRET_PREVIOUS');
    expect(e.message).toMatch(/^KEYWARD_HASH_SECRET_PREVIOUS: must differ from the hash secret/);
    expect(e.message).not.toContain(A.toString('hex'));
    expect(e.message).not.toContain(A.toString('base64'));
  });

  it('is given either directly or as a file, not both', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'keyward-prev-')), 'previous.secret');
    writeFileSync(file, A.toString('hex'));
    const e = errorOf({
      KEYWARD_DATABASE_URL: PG,
      KEYWARD_HASH_SECRET: B.toString('hex'),
      KEYWARD_HASH_SECRET_PREVIOUS: A.toString('hex'),
      KEYWARD_HASH_SECRET_PREVIOUS_FILE: file,
    });
    expect(e.variable).toBe('KEYWARD_HASH_SECRET_PREVIOUS');
    expect(e.message).toMatch(/set either KEYWARD_HASH_SECRET_PREVIOUS or KEYWARD_HASH_SECRET_PREVIOUS_FILE, not both/);
    const missing = errorOf({
      KEYWARD_DATABASE_URL: PG,
      KEYWARD_HASH_SECRET: B.toString('hex'),
      KEYWARD_HASH_SECRET_PREVIOUS_FILE: `${file}.absent`,
    });
    expect(missing.variable).toBe('KEYWARD_HASH_SECRET_PREVIOUS_FILE');
  });

  it('when invalid with SQLite, no secret file is generated', () => {
    const db = join(mkdtempSync(join(tmpdir(), 'keyward-prev-')), 'k.db');
    errorOf({ KEYWARD_DATABASE_URL: `sqlite:${db}`, KEYWARD_HASH_SECRET_PREVIOUS: 'abcd' });
    expect(existsSync(secretFileFor(db))).toBe(false);
  });
});
