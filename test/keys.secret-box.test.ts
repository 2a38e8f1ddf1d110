/**
 * The secret box (src/keys/secret-box.ts): one sealed format for every secret kept
 * recoverable at rest, a key per purpose, the text bound to its row, the hash secret
 * named in the text so a rotation's previous secret still opens it, and open() giving
 * undefined, never an exception, for anything that does not open.
 */
import { randomBytes } from 'node:crypto';
import { secretId } from '../src/keys/hash';
import { createSecretBox, type SecretPurpose } from '../src/keys/secret-box';

const PURPOSES: SecretPurpose[] = ['admin-requests', 'webhooks'];

function tamper(sealed: string, at: number): string {
  const [version, id, data] = sealed.split('.') as [string, string, string];
  const raw = Buffer.from(data, 'base64url');
  raw[at] = raw[at]! ^ 0x01;
  return `${version}.${id}.${raw.toString('base64url')}`;
}

describe.each(PURPOSES)('secret box for %s', (purpose) => {
  const before = randomBytes(32);
  const after = randomBytes(32);
  const box = createSecretBox(purpose, before);

  it('seals as v1.<secretId>.<base64url>, without the text, and opens again', () => {
    const sealed = box.seal('whsec_abc', 'row-1');
    expect(sealed).toMatch(new RegExp(`^v1\\.${secretId(before)}\\.[A-Za-z0-9_-]+$`));
    expect(sealed).not.toContain('abc');
    expect(box.open(sealed, 'row-1')).toBe('whsec_abc');
    expect(createSecretBox(purpose, before).open(sealed, 'row-1')).toBe('whsec_abc');
    expect(box.seal('whsec_abc', 'row-1')).not.toBe(sealed); // a fresh nonce each time
    expect(box.open(box.seal('', 'row-1'), 'row-1')).toBe('');
    expect(box.open(box.seal('é ✓ 🔑', 'row-1'), 'row-1')).toBe('é ✓ 🔑');
  });

  it('opens under the previous hash secret during a rotation, and seals under the new one', () => {
    const sealed = box.seal('whsec_abc', 'row-1');
    const rotated = createSecretBox(purpose, after, before);
    expect(rotated.open(sealed, 'row-1')).toBe('whsec_abc');
    const resealed = rotated.seal('whsec_abc', 'row-1');
    expect(resealed.split('.')[1]).toBe(secretId(after));
    expect(createSecretBox(purpose, after).open(resealed, 'row-1')).toBe('whsec_abc');
    expect(box.open(resealed, 'row-1')).toBeUndefined();
  });

  it('gives undefined for an unknown hash secret', () => {
    const sealed = box.seal('whsec_abc', 'row-1');
    expect(createSecretBox(purpose, after).open(sealed, 'row-1')).toBeUndefined();
    // The same key under another id does not open either: the id picks the key.
    expect(box.open(sealed.replace(secretId(before), secretId(after)), 'row-1')).toBeUndefined();
  });

  it('gives undefined for other additional data (a text moved to another row)', () => {
    const sealed = box.seal('whsec_abc', 'row-1');
    expect(box.open(sealed, 'row-2')).toBeUndefined();
    expect(box.open(sealed, '')).toBeUndefined();
  });

  it('gives undefined for a tampered or malformed text, without throwing', () => {
    const sealed = box.seal('whsec_abc', 'row-1');
    const length = Buffer.from(sealed.split('.')[2]!, 'base64url').length;
    for (const at of [0, 11, 12, length - 17, length - 1]) expect(box.open(tamper(sealed, at), 'row-1')).toBeUndefined();
    const [, id, data] = sealed.split('.') as [string, string, string];
    for (const bad of [
      '',
      'v1',
      `v1.${id}`,
      `v2.${id}.${data}`,
      `v1.${id}.${data}.x`,
      `v1.${id}.${data.slice(0, 20)}`,
      `v1.${id}.${data.slice(0, -1)}`,
      `v1.${id}.${data}=`,
      `v1.${id}.+${data}`,
      `v1..${data}`,
      `v1.__proto__.${data}`,
      `v1.${id}.`,
    ]) {
      expect(() => box.open(bad, 'row-1')).not.toThrow();
      expect(box.open(bad, 'row-1')).toBeUndefined();
    }
  });
});

it('purposes do not open each other', () => {
  const secret = randomBytes(32);
  const admin = createSecretBox('admin-requests', secret);
  const webhooks = createSecretBox('webhooks', secret);
  expect(admin.purpose).toBe('admin-requests');
  expect(webhooks.purpose).toBe('webhooks');
  expect(webhooks.open(admin.seal('ksk_secret', 'row-1'), 'row-1')).toBeUndefined();
  expect(admin.open(webhooks.seal('whsec_abc', 'row-1'), 'row-1')).toBeUndefined();
});
