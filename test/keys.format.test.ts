import {
  ADMIN_TOKEN_SCANNER_REGEX,
  KEY_SCANNER_REGEX,
  base62,
  crc32,
  displayParts,
  generateAdminToken,
  generateKey,
  isWellFormedAdminToken,
  parseKey,
} from '../src/keys/format';
import { createHasher } from '../src/keys/hash';

describe('key format', () => {
  it('makes live and test keys of the documented shape', () => {
    const live = generateKey('live');
    const test = generateKey('test');
    expect(live).toMatch(/^kw_live_[0-9A-Za-z]{49}$/);
    expect(test).toMatch(/^kw_test_[0-9A-Za-z]{49}$/);
    expect(parseKey(live)).toEqual({ ok: true, environment: 'live' });
    expect(parseKey(test)).toEqual({ ok: true, environment: 'test' });
  });

  it('ends with the base62 CRC32 of everything before it', () => {
    const k = generateKey('live');
    expect(k.slice(-6)).toBe(base62(crc32(k.slice(0, -6)), 6));
  });

  it('computes the standard CRC32', () => {
    expect(crc32('123456789')).toBe(0xcbf43926);
    expect(crc32('')).toBe(0);
  });

  it('never repeats and spreads over the whole alphabet', () => {
    const keys = new Set(Array.from({ length: 2000 }, () => generateKey('live')));
    expect(keys.size).toBe(2000);
    const chars = new Set([...keys].flatMap((k) => [...k.slice(8, 51)]));
    expect(chars.size).toBe(62);
  });

  it('rejects every single-character typo by its checksum', () => {
    const k = generateKey('test');
    for (let i = 8; i < k.length; i++) {
      const c = k[i] === 'a' ? 'b' : 'a';
      const typo = k.slice(0, i) + c + k.slice(i + 1);
      expect(parseKey(typo)).toEqual({ ok: false, reason: 'bad_checksum' });
    }
  });

  it.each([
    ['empty', ''],
    ['wrong prefix', 'sk_live_' + 'a'.repeat(49)],
    ['unknown environment', 'kw_prod_' + 'a'.repeat(49)],
    ['too short', generateKey('live').slice(0, -1)],
    ['too long', generateKey('live') + 'a'],
    ['bad characters', 'kw_live_' + '-'.repeat(49)],
    ['surrounding space', ` ${generateKey('live')}`],
  ])('rejects a malformed key: %s', (_name, text) => {
    expect(parseKey(text)).toEqual({ ok: false, reason: 'malformed' });
  });

  it('has a scanner regex that finds keys in text and ignores near misses', () => {
    const a = generateKey('live');
    const b = generateKey('test');
    const text = `config: API_KEY=${a}\n"other": "${b}", not: kw_live_short, kw_live_${'x'.repeat(60)}`;
    expect(text.match(KEY_SCANNER_REGEX)).toEqual([a, b]);
  });

  it('shows only a prefix and the last 4 characters', () => {
    const k = generateKey('live');
    const { prefix, hint } = displayParts(k);
    expect(prefix).toBe(k.slice(0, 12));
    expect(prefix.startsWith('kw_live_')).toBe(true);
    expect(hint).toBe(k.slice(-4));
  });

  it('makes admin tokens of their own shape, which are not API keys', () => {
    const t = generateAdminToken();
    expect(isWellFormedAdminToken(t)).toBe(true);
    expect(parseKey(t).ok).toBe(false);
    expect(t.match(ADMIN_TOKEN_SCANNER_REGEX)).toEqual([t]);
    expect(isWellFormedAdminToken(t.slice(0, -1) + (t.endsWith('a') ? 'b' : 'a'))).toBe(false);
  });
});

describe('keyed hash', () => {
  it('is HMAC-SHA256 with the server secret, so another secret gives another hash', () => {
    const k = generateKey('live');
    const h1 = createHasher(Buffer.alloc(32, 1));
    const h2 = createHasher(Buffer.alloc(32, 2));
    expect(h1.hash(k)).toMatch(/^[0-9a-f]{64}$/);
    expect(h1.hash(k)).not.toBe(h2.hash(k));
    expect(h1.matches(k, h1.hash(k))).toBe(true);
    expect(h1.matches(k, h2.hash(k))).toBe(false);
    expect(h1.matches(k, 'zz')).toBe(false);
  });
});
