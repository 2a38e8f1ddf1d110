/**
 * Property-based tests of the API-key format (src/keys/format.ts), against an
 * oracle written here independently of the implementation: its own CRC32 and its
 * own base62, and the documented shape kw_(live|test)_ + 49 base62 characters.
 */
import fc from 'fast-check';
import { generateKey, parseKey, type Environment } from '../src/keys/format';

// ---- the oracle ------------------------------------------------------------

const ORACLE_ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** Bitwise CRC32 (IEEE 802.3, reflected, polynomial 0xEDB88320), no table. */
function oracleCrc32(text: string): number {
  let crc = ~0 >>> 0;
  for (let i = 0; i < text.length; i++) {
    crc = (crc ^ text.charCodeAt(i)) >>> 0;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? ((crc >>> 1) ^ 0xedb88320) >>> 0 : crc >>> 1;
  }
  return ~crc >>> 0;
}

/** Six base62 digits, most significant first, by BigInt division. */
function oracleBase62x6(n: number): string {
  let v = BigInt(n);
  let out = '';
  for (let i = 0; i < 6; i++) {
    out = ORACLE_ALPHABET[Number(v % 62n)]! + out;
    v /= 62n;
  }
  if (v !== 0n) throw new Error(`does not fit in six base62 digits: ${n}`); // 62^6 > 2^32: never
  return out;
}

const SHAPE = /^kw_(live|test)_[0-9A-Za-z]{49}$/;

/** What parseKey must say about `text`. */
function expected(text: string): { ok: true; environment: Environment } | { ok: false; reason: 'malformed' | 'bad_checksum' } {
  const m = SHAPE.exec(text);
  if (!m) return { ok: false, reason: 'malformed' };
  const head = text.slice(0, -6);
  if (oracleBase62x6(oracleCrc32(head)) !== text.slice(-6)) return { ok: false, reason: 'bad_checksum' };
  return { ok: true, environment: m[1] as Environment };
}

/** parseKey must not throw and must agree with the oracle, reason included. */
function agrees(text: string): void {
  let got: ReturnType<typeof parseKey>;
  expect(() => (got = parseKey(text))).not.toThrow();
  expect(got!).toEqual(expected(text));
}

// ---- generators ------------------------------------------------------------

const env = fc.constantFrom<Environment>('live', 'test');
/** A freshly generated, valid key (generateKey draws from the CSPRNG, not from fast-check). */
const validKey = env.map((e) => generateKey(e));
const base62Char = fc.constantFrom(...ORACLE_ALPHABET);
/** Characters a typo, a paste or an attacker might put in a key. */
const anyChar = fc.oneof(
  base62Char,
  fc.constantFrom(
    '_',
    '-',
    ' ',
    '\t',
    '\n',
    '\0',
    '.',
    '=',
    '/',
    '+',
    ',',
    'é',
    'ß',
    'İ',
    'K' /* Kelvin sign */,
    '０' /* fullwidth 0 */,
    '\u00a0',
    '\ufeff',
  ),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);

/** An edit position, uniform (fc.nat alone is biased towards 0, i.e. the prefix). */
const position = fc.noBias(fc.nat(1000));

type Edit =
  | { op: 'sub'; at: number; ch: string }
  | { op: 'ins'; at: number; ch: string }
  | { op: 'del'; at: number }
  | { op: 'flip'; at: number }
  | { op: 'env'; to: string }
  | { op: 'prefix'; to: string };

function applyEdit(key: string, e: Edit): string {
  const at = (n: number, extra = 0) => n % (key.length + extra);
  switch (e.op) {
    case 'sub': {
      const i = at(e.at);
      return key.slice(0, i) + e.ch + key.slice(i + 1);
    }
    case 'ins': {
      const i = at(e.at, 1);
      return key.slice(0, i) + e.ch + key.slice(i);
    }
    case 'del': {
      const i = at(e.at);
      return key.slice(0, i) + key.slice(i + 1);
    }
    case 'flip': {
      const i = at(e.at);
      const c = key[i]!;
      const f = c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase();
      return key.slice(0, i) + f + key.slice(i + 1);
    }
    case 'env':
      return key.replace(/^kw_(live|test)_/, `kw_${e.to}_`);
    case 'prefix':
      return e.to + key.replace(/^kw_/, '');
  }
}

const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ op: fc.constant('sub' as const), at: position, ch: anyChar }),
  fc.record({ op: fc.constant('ins' as const), at: position, ch: anyChar }),
  fc.record({ op: fc.constant('del' as const), at: position }),
  fc.record({ op: fc.constant('flip' as const), at: position }),
  fc.record({ op: fc.constant('env' as const), to: fc.constantFrom('live', 'test', 'LIVE', 'Test', 'prod', 'liv', 'lives', '') }),
  fc.record({ op: fc.constant('prefix' as const), to: fc.constantFrom('kw_', 'KW_', 'kw-', 'kwadm_', 'sk_', '', ' kw_', 'kw__') }),
);

/** A valid key with one to five random edits: near misses, mostly. */
const mutatedKey = fc.tuple(validKey, fc.array(edit, { minLength: 1, maxLength: 5 })).map(([k, edits]) => edits.reduce(applyEdit, k));

/** Strings of the right shape with a random (usually wrong) checksum, and with the right one. */
const shapedKey = fc
  .tuple(
    env,
    fc.string({ unit: base62Char, minLength: 43, maxLength: 43 }),
    fc.string({ unit: base62Char, minLength: 6, maxLength: 6 }),
    fc.boolean(),
  )
  .map(([e, body, sum, fix]) => {
    const head = `kw_${e}_${body}`;
    return head + (fix ? oracleBase62x6(oracleCrc32(head)) : sum);
  });

/** A valid key and one character to put into it, at every position in turn. */
const keyAndChar = fc.tuple(validKey, anyChar);

/** Every single-character change of `k` with `ch`: substitution (a different char), insertion, deletion, at each position. */
function singleChanges(k: string, ch: string): string[] {
  const out: string[] = [];
  for (let i = 0; i <= k.length; i++) {
    out.push(k.slice(0, i) + ch + k.slice(i));
    if (i === k.length) break;
    out.push(k.slice(0, i) + k.slice(i + 1));
    // A substitution must change the character; take the next one in the alphabet if equal.
    const c = ch !== k[i] ? ch : ORACLE_ALPHABET[(ORACLE_ALPHABET.indexOf(ch) + 1) % 62]!;
    out.push(k.slice(0, i) + c + k.slice(i + 1));
  }
  return out;
}

// ---- properties ------------------------------------------------------------

describe('parseKey (property-based)', () => {
  it('oracle self-check: agrees with the documented CRC32 test vector and a generated key', () => {
    expect(oracleCrc32('123456789')).toBe(0xcbf43926);
    expect(expected(generateKey('live')).ok).toBe(true);
  });

  it('never throws and agrees with the oracle on arbitrary strings', () => {
    fc.assert(fc.property(fc.string(), agrees), { numRuns: 500 });
  });

  it('never throws and agrees with the oracle on full-Unicode strings', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary' }), agrees), { numRuns: 500 });
  });

  it('never throws and agrees with the oracle on UTF-16 strings with lone surrogates', () => {
    const codeUnit = fc.nat(0xffff).map((c) => String.fromCharCode(c));
    fc.assert(fc.property(fc.string({ unit: codeUnit, maxLength: 80 }), agrees), { numRuns: 500 });
  });

  it('agrees with the oracle on valid keys with random substitutions, insertions, deletions, prefix changes and case flips', () => {
    fc.assert(fc.property(mutatedKey, agrees), { numRuns: 1000 });
  });

  it('agrees with the oracle on well-shaped strings with random and with correct checksums', () => {
    fc.assert(fc.property(shapedKey, agrees), { numRuns: 1000 });
  });

  it('accepts a string only if it has the exact shape and its last 6 characters are the base62 CRC32 of the rest', () => {
    const candidates = fc.oneof(fc.string(), fc.string({ unit: 'binary' }), mutatedKey, shapedKey, validKey);
    fc.assert(
      fc.property(candidates, (text) => {
        const r = parseKey(text);
        if (r.ok) {
          expect(text).toMatch(SHAPE);
          expect(text.slice(-6)).toBe(oracleBase62x6(oracleCrc32(text.slice(0, -6))));
          expect(r.environment).toBe(text.slice(3, 7));
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('rejects every single-character change of a valid key (each position: substitution, insertion, deletion)', () => {
    fc.assert(
      fc.property(keyAndChar, ([k, ch]) => {
        for (const changed of singleChanges(k, ch)) {
          // Plain comparisons: ~170 changes per run, jest's expect would dominate the time.
          if (changed === k) throw new Error('not a change');
          const r = parseKey(changed);
          if (r.ok) throw new Error(`accepted a one-character change: ${JSON.stringify(changed)} of ${k}`);
          const want = expected(changed);
          if (want.ok || r.reason !== want.reason)
            throw new Error(`${JSON.stringify(changed)}: got ${r.reason}, oracle says ${JSON.stringify(want)}`);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('accepts every generated key, with its environment', () => {
    fc.assert(
      fc.property(env, (e) => {
        const k = generateKey(e);
        expect(k).toMatch(SHAPE);
        expect(parseKey(k)).toEqual({ ok: true, environment: e });
        expect(expected(k)).toEqual({ ok: true, environment: e });
      }),
      { numRuns: 1000 },
    );
  });
});
