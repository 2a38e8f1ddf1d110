/**
 * The API-key and admin-token formats.
 *
 *   API key:     kw_<env>_<43 base62 random chars><6 base62 checksum chars>
 *                env is `live` or `test`; 43 base62 chars carry 256 bits from a CSPRNG.
 *   Admin token: kwadm_<43 base62 random chars><6 base62 checksum chars>
 *
 * The checksum is CRC32 of everything before it, in base62, left-padded with `0`
 * to 6 characters (as GitHub's tokens do). It lets keyward reject a mistyped or
 * forged credential without touching the database, and lets secret scanners match
 * keys with one regular expression (KEY_SCANNER_REGEX).
 */
import { randomBytes } from 'node:crypto';

export type Environment = 'live' | 'test';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
export const RANDOM_LENGTH = 43;
export const CHECKSUM_LENGTH = 6;
const BODY = `[0-9A-Za-z]{${RANDOM_LENGTH + CHECKSUM_LENGTH}}`;

/** Matches one full API key anywhere in a text; for secret scanners. */
export const KEY_SCANNER_REGEX = new RegExp(`\\bkw_(?:live|test)_${BODY}\\b`, 'g');
/** Matches one full admin token anywhere in a text. */
export const ADMIN_TOKEN_SCANNER_REGEX = new RegExp(`\\bkwadm_${BODY}\\b`, 'g');

const KEY_EXACT = new RegExp(`^kw_(live|test)_${BODY}$`);
const TOKEN_EXACT = new RegExp(`^kwadm_${BODY}$`);

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC32 (IEEE) of an ASCII string. */
export function crc32(text: string): number {
  return crc32Prefix(text, text.length);
}

/** CRC32 (IEEE) of the text's first `length` characters. */
function crc32Prefix(text: string, length: number): number {
  let c = 0xffffffff;
  for (let i = 0; i < length; i++) c = CRC_TABLE[(c ^ text.charCodeAt(i)) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function base62(n: number, width: number): string {
  let s = '';
  let v = n;
  while (v > 0) {
    s = ALPHABET[v % 62] + s;
    v = Math.floor(v / 62);
  }
  return s.padStart(width, '0');
}

/** `length` base62 characters, each uniform, from the CSPRNG (rejection sampling). */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    const buf = randomBytes(length * 2);
    for (const b of buf) {
      if (b < 248) out += ALPHABET[b % 62];
      if (out.length === length) break;
    }
  }
  return out;
}

function withChecksum(head: string): string {
  return head + base62(crc32(head), CHECKSUM_LENGTH);
}

function checksumValid(text: string): boolean {
  // base62(crc32(head), CHECKSUM_LENGTH) === tail, compared digit by digit (no string built)
  const headLength = text.length - CHECKSUM_LENGTH;
  if (headLength < 0) return false;
  let v = crc32Prefix(text, headLength);
  for (let i = text.length - 1; i >= headLength; i--) {
    if (text.charCodeAt(i) !== ALPHABET.charCodeAt(v % 62)) return false;
    v = Math.floor(v / 62);
  }
  return v === 0;
}

export function generateKey(env: Environment): string {
  return withChecksum(`kw_${env}_${randomBase62(RANDOM_LENGTH)}`);
}

export function generateAdminToken(): string {
  return withChecksum(`kwadm_${randomBase62(RANDOM_LENGTH)}`);
}

export type KeyParse = { ok: true; environment: Environment } | { ok: false; reason: 'malformed' | 'bad_checksum' };

/** Checks an API key's shape and checksum; no I/O. */
export function parseKey(text: string): KeyParse {
  if (!KEY_EXACT.test(text)) return MALFORMED;
  if (!checksumValid(text)) return BAD_CHECKSUM;
  return text.startsWith('kw_live_') ? LIVE : TEST;
}
/** parseKey's answers, shared (read-only). */
const MALFORMED: KeyParse = Object.freeze({ ok: false, reason: 'malformed' });
const BAD_CHECKSUM: KeyParse = Object.freeze({ ok: false, reason: 'bad_checksum' });
const LIVE: KeyParse = Object.freeze({ ok: true, environment: 'live' });
const TEST: KeyParse = Object.freeze({ ok: true, environment: 'test' });

/** True when the text has the admin-token shape and a valid checksum. */
export function isWellFormedAdminToken(text: string): boolean {
  return TOKEN_EXACT.test(text) && checksumValid(text);
}

/** The safe display parts of a key: `kw_live_AbCd` and its last 4 characters. */
export function displayParts(key: string): { prefix: string; hint: string } {
  const envEnd = key.indexOf('_', 3) + 1;
  return { prefix: key.slice(0, envEnd + 4), hint: key.slice(-4) };
}
