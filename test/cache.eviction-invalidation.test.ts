/**
 * The key cache's own bookkeeping, against a KeySource that counts its loads:
 * CLOCK eviction at maxEntries, FIFO eviction of negative entries, invalidation by
 * hash and by id (notifications), TTL edges at real epoch times, and eviction that
 * stays correct through many deletions at the front of its Map.
 */
import fc from 'fast-check';
import { cacheKeyOfHash, KeyCache, type KeyCacheOptions, type KeySource } from '../src/authz/cache';
import type { KeyLookup, KeyView, OrgView } from '../src/authz/decision';
import { MapCursor } from '../src/util/map-cursor';
import { KeyTable } from '../src/authz/key-table';

const T0 = Date.UTC(2026, 10, 26, 12, 0, 0);
const ORG: OrgView = { id: 'org_1', active: true, rateLimitPerMinute: 100, monthlyQuota: 1000, billingAnchorDay: 1 };

/** Hex hash of a test key name (64 hex digits); the cache key is its bytes. */
function hex(name: string): string {
  return Buffer.from(name.padEnd(32, '.'), 'latin1').toString('hex');
}
function digest(name: string): string {
  return cacheKeyOfHash(hex(name));
}
function view(name: string): KeyView {
  return {
    id: `key_${name}`,
    organizationId: ORG.id,
    environment: 'live',
    scopes: [],
    expiresAt: null,
    revokedAt: null,
    disabled: false,
    rateLimitPerMinute: null,
  };
}

class CountingSource implements KeySource {
  loads: string[] = [];
  known = new Set<string>();
  gate: Promise<void> | undefined;
  async load(keyHash: string) {
    this.loads.push(keyHash);
    if (this.gate) await this.gate;
    const name = Buffer.from(keyHash, 'hex').toString('latin1').replace(/\.+$/, '');
    return this.known.has(name) ? { key: view(name), org: { ...ORG } } : null;
  }
  loadsOf(name: string): number {
    return this.loads.filter((h) => h === hex(name)).length;
  }
}

function cacheWith(names: string[], opts: Partial<KeyCacheOptions> = {}) {
  const source = new CountingSource();
  for (const n of names) source.known.add(n);
  const cache = new KeyCache(source, {
    ttlMs: 60_000,
    maxEntries: 1000,
    negativeTtlMs: 30_000,
    negativeMaxEntries: 1000,
    maxStaleMs: 0,
    ...opts,
  });
  const get = async (name: string, now = T0): Promise<KeyLookup> => cache.lookup(digest(name), now);
  return { source, cache, get };
}

describe('KeyCache eviction', () => {
  it('gives a recently hit entry a second chance (CLOCK) and evicts an unused one', async () => {
    const { source, cache, get } = cacheWith(['a', 'b', 'c', 'd'], { maxEntries: 3 });
    for (const n of ['a', 'b', 'c']) expect((await get(n)).kind).toBe('found');
    expect((await get('a')).kind).toBe('found'); // a hit: marked
    await get('d'); // over 3: a is passed over (unmarked), b goes
    expect(cache.size).toBe(3);
    expect(cache.stats.evictions).toBe(1);
    for (const n of ['a', 'c', 'd']) await get(n);
    expect(source.loads).toHaveLength(4);
    expect((await get('b')).kind).toBe('found');
    expect(source.loadsOf('b')).toBe(2);
  });

  it('stays at maxEntries through many evictions, keeping the entries that are hit', async () => {
    const names = Array.from({ length: 5000 }, (_, i) => `k${i}`);
    const { source, cache, get } = cacheWith([...names, 'hot'], { maxEntries: 100 });
    await get('hot');
    for (const n of names) {
      await get(n);
      await get('hot');
    }
    expect(cache.size).toBe(100);
    expect(cache.stats.evictions).toBe(5001 - 100);
    expect(source.loadsOf('hot')).toBe(1);
  });

  it('evicts the oldest negative entry first at negativeMaxEntries', async () => {
    const { source, get } = cacheWith([], { negativeMaxEntries: 2 });
    for (const n of ['x', 'y', 'z']) expect((await get(n)).kind).toBe('unknown');
    await get('y');
    await get('z');
    expect(source.loads).toHaveLength(3);
    await get('x'); // evicted: asked again
    expect(source.loadsOf('x')).toBe(2);
  });

  it('drops expired negative entries as new ones arrive, so a steady flood holds about rate x TTL', async () => {
    const { cache, get } = cacheWith([], { negativeTtlMs: 30_000, negativeMaxEntries: 1000 });
    // 10 distinct unknown keys a second for 300 s: 3000 keys, about 300 of them within the TTL.
    for (let i = 0; i < 3000; i++) expect((await get(`unknown-${i}`, T0 + i * 100)).kind).toBe('unknown');
    expect(cache.negativeSize).toBeLessThanOrEqual(301);
    expect(cache.negativeSize).toBeGreaterThanOrEqual(299);
    // Still remembered within the TTL: no second load.
    expect((await get('unknown-2999', T0 + 2999 * 100 + 29_000)).kind).toBe('unknown');
    expect(cache.stats.negativeHits).toBe(1);
  });
});

describe('KeyCache lifetimes', () => {
  it('keeps an entry exactly ttlMs at real epoch times, and serves it stale within maxStaleMs when the store fails', async () => {
    const { source, get } = cacheWith(['a'], { ttlMs: 1000, maxStaleMs: 500 });
    await get('a', T0);
    await get('a', T0 + 999);
    expect(source.loadsOf('a')).toBe(1);
    await get('a', T0 + 1000);
    expect(source.loadsOf('a')).toBe(2);
    source.load = () => Promise.reject(new Error('store down'));
    expect((await get('a', T0 + 1000 + 1499)).kind).toBe('found');
    expect((await get('a', T0 + 1000 + 1500)).kind).toBe('unavailable');
  });
});

describe('KeyCache invalidation', () => {
  it('drops keys by id in one pass (notifications) and leaves the others cached', async () => {
    const { source, cache, get } = cacheWith(['a', 'b', 'c']);
    for (const n of ['a', 'b', 'c']) await get(n);
    cache.invalidateKeys(['key_a', 'key_c', 'key_unknown']);
    expect(cache.size).toBe(1);
    for (const n of ['a', 'b', 'c']) await get(n);
    expect(source.loadsOf('a')).toBe(2);
    expect(source.loadsOf('b')).toBe(1);
    expect(source.loadsOf('c')).toBe(2);
  });

  it('drops a key by hash, and its negative entry', async () => {
    const { source, cache, get } = cacheWith(['a']);
    await get('a');
    expect((await get('n')).kind).toBe('unknown');
    cache.invalidateKey('key_a', hex('a'));
    cache.invalidateKey('key_n', hex('n'));
    source.known.add('n');
    expect((await get('n')).kind).toBe('found');
    await get('a');
    expect(source.loadsOf('a')).toBe(2);
  });

  it('does not cache a load that was in flight when its key was invalidated by id', async () => {
    const { source, cache, get } = cacheWith(['a']);
    let open!: () => void;
    source.gate = new Promise((r) => (open = r));
    const pending = get('a');
    cache.invalidateKeys(['key_a']);
    open();
    source.gate = undefined;
    expect((await pending).kind).toBe('found');
    expect(cache.size).toBe(0);
  });
});

describe('MapCursor', () => {
  it('walks the live entries in order through deletions, re-insertions and clears (model)', () => {
    const op = fc.oneof(
      fc.record({ t: fc.constant('set' as const), k: fc.integer({ min: 0, max: 20 }) }),
      fc.record({ t: fc.constant('delete' as const), k: fc.integer({ min: 0, max: 20 }) }),
      fc.record({ t: fc.constant('dropFront' as const) }),
      fc.record({ t: fc.constant('advance' as const) }),
      fc.record({ t: fc.constant('clear' as const) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops_) => {
        const map = new Map<number, number>();
        const cur = new MapCursor(map);
        // Model: the keys in order; the cursor's place (how many it has passed), the
        // entry it holds, and its mutation count (it starts again from the front after
        // size/8 + 16 mutations without a move).
        let order: number[] = [];
        let passed = 0;
        let held: number | undefined;
        let moving = false;
        let ops = 0;
        const restart = () => {
          moving = false;
          held = undefined;
          passed = 0;
          ops = 0;
        };
        const mutated = (k: number) => {
          if (held === k) held = undefined;
          if (moving && ++ops > (map.size >> 3) + 16) restart();
        };
        const remove = (k: number) => {
          const i = order.indexOf(k);
          if (i < 0) return;
          order.splice(i, 1);
          if (i < passed) passed--;
        };
        const current = (): number | undefined => {
          if (held !== undefined) return held;
          if (order.length === 0) {
            moving = false;
            return undefined;
          }
          if (!moving || passed >= order.length) passed = 0; // from the front
          moving = true;
          ops = 0;
          held = order[passed++];
          return held;
        };
        for (const o of ops_) {
          if (o.t === 'set') {
            cur.mutated(o.k);
            mutated(o.k);
            remove(o.k);
            map.delete(o.k);
            map.set(o.k, o.k);
            order.push(o.k);
          } else if (o.t === 'delete') {
            cur.mutated(o.k);
            mutated(o.k);
            remove(o.k);
            map.delete(o.k);
          } else if (o.t === 'clear') {
            map.clear();
            cur.reset();
            order = [];
            restart();
          } else {
            const c = cur.current();
            const want = current();
            expect(c?.[0]).toBe(want);
            if (c === undefined) continue;
            if (o.t === 'advance') {
              cur.advance();
              held = undefined;
            } else {
              cur.mutated(c[0]);
              mutated(c[0]);
              remove(c[0]);
              map.delete(c[0]);
            }
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('KeyTable', () => {
  const digestOf = (n: number) => {
    // Seven table homes just below the first table size (2048): probe chains collide and
    // wrap around the end of the index.
    const b = Buffer.alloc(32, n & 0xff);
    b.writeUInt32LE(2042 + (n % 7), 0);
    b.writeUInt32BE(n, 28);
    return b.toString('latin1');
  };
  const key = (n: number): KeyView => ({
    id: `key_${n}`,
    organizationId: 'org_1',
    environment: n % 2 ? 'test' : 'live',
    scopes: [],
    expiresAt: n % 3 ? null : n,
    revokedAt: null,
    disabled: n % 4 === 1,
    rateLimitPerMinute: n % 5 ? null : n,
  });

  it('agrees with a Map under random puts, removes and evictions (model)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('put', 'remove', 'evict'), fc.integer({ min: 0, max: 60 })), { maxLength: 400 }),
        (ops) => {
          const t = new KeyTable();
          const model = new Map<number, KeyView>();
          for (const [op, n] of ops) {
            if (op === 'put') {
              t.put(digestOf(n), key(n), ORG, [], n);
              model.set(n, key(n));
            } else if (op === 'remove') {
              const s = t.find(digestOf(n));
              expect(s >= 0).toBe(model.has(n));
              if (s >= 0) t.remove(s);
              model.delete(n);
            } else if (t.evictOne()) {
              const gone = [...model.keys()].filter((m) => t.find(digestOf(m)) < 0);
              expect(gone).toHaveLength(1);
              model.delete(gone[0]!);
            }
            expect(t.size).toBe(model.size);
          }
          for (let n = 0; n <= 60; n++) {
            const s = t.find(digestOf(n));
            expect(s >= 0).toBe(model.has(n));
            if (s >= 0) {
              expect(t.view(s)).toEqual(model.get(n));
              expect(t.loadedAt(s)).toBe(n);
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('grows past its first capacity and finds every key afterwards', () => {
    const t = new KeyTable();
    for (let n = 0; n < 5000; n++) t.put(digestOf(n), key(n), ORG, [], n);
    for (let n = 0; n < 5000; n += 2) t.remove(t.find(digestOf(n)));
    for (let n = 5000; n < 7000; n++) t.put(digestOf(n), key(n), ORG, [], n);
    expect(t.size).toBe(4500);
    for (let n = 0; n < 7000; n++) expect(t.find(digestOf(n)) >= 0).toBe(n >= 5000 || n % 2 === 1);
  });
});
