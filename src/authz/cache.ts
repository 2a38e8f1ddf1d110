/**
 * The key cache of the data plane: what a Check needs about a key and its
 * organization, by keyed hash, so a key seen recently is decided without the store.
 *
 * Contract:
 *  - Positive entries (key + organization) live at most `ttlMs`; then the next Check
 *    reloads them. At most `maxEntries`; eviction approximates least recently used
 *    (CLOCK, second chance: a hit only marks the entry, the eviction scan passes over
 *    marked entries once, unmarking them), so a hit changes no Map.
 *  - Negative entries (hashes the store does not know) live `negativeTtlMs`, at most
 *    `negativeMaxEntries`, oldest evicted first; a flood of random well-formed keys
 *    therefore reaches the store at most once per distinct key per negativeTtlMs.
 *  - Concurrent misses for one hash share one store query.
 *  - Store lookups are budgeted (missQueriesPerSecond): over the budget a miss is
 *    answered like a store failure (below), without a query.
 *  - When the store fails, an expired positive entry younger than `maxStaleMs` is
 *    still used; otherwise the lookup is `unavailable` (never an allow).
 *  - invalidateKey / invalidateOrg drop entries at once (KeyAdmin changes, in this
 *    process or, through the change listener, in another). A key is found by its hash
 *    (KeyAdmin has it; the listener reads it by id from the store). By id alone
 *    (invalidateKeys: the listener's fallback when the store cannot say) it takes one
 *    pass over the entries, instead of an id index costing memory for every key.
 *  - setTtl shortens or restores the positive lifetime (a shorter one while change
 *    notifications cannot be received).
 *  - Entries are keyed by the keyed hash's 32 bytes as a latin1 string (CredentialHasher
 *    .digest; half the memory of hex); the store is asked by the hex hash.
 *  - Memory: entries share one OrgView per organization (while its fields are
 *    unchanged) and one scopes array per distinct scope list, and keep their load time
 *    as a small integer (ms since the cache's first load), so a cached key costs little
 *    more than its own id, hash and window (README, "Measured figures").
 *    Cached views are never mutated.
 */
import { MapCursor } from '../util/map-cursor';
import type { KeyLookup, KeyView, OrgView } from './decision';

/** The cache key of a stored (hex) key hash: the 32 hash bytes as a latin1 string. */
export function cacheKeyOfHash(hexHash: string): string {
  return Buffer.from(hexHash, 'hex').toString('latin1');
}

export interface KeySource {
  /** One indexed query: the key by hash (hex), with its organization. Throws if the store fails. */
  load(keyHash: string): Promise<{ key: KeyView; org: OrgView | null } | null>;
}

export interface KeyCacheOptions {
  ttlMs: number;
  maxEntries: number;
  negativeTtlMs: number;
  negativeMaxEntries: number;
  maxStaleMs: number;
  /**
   * Store lookups per second at most (token bucket, one second of burst); 0: no bound.
   * A miss over the budget is answered from an expired entry younger than maxStaleMs
   * if there is one, else `unavailable` (a 503, never an allow), so a flood of random
   * well-formed keys cannot push more than this many queries per second at the store.
   */
  missQueriesPerSecond?: number;
}

/**
 * n as a small integer when it is one (a double result, even a whole one, would be
 * stored in its own 16-byte box); else n itself (after about 12 days of uptime).
 */
function smallInt(n: number): number {
  return n >= -0x40000000 && n < 0x40000000 && n === Math.floor(n) ? n | 0 : n;
}

/** Bound of the shared organization views and scope lists (cleared when exceeded). */
const SHARED_MAX = 100_000;
const NO_SCOPES: readonly string[] = Object.freeze([]);

/**
 * A cached key: the key's view itself, with its organization, its load time (ms after
 * `base`) and the CLOCK mark (one object per key; only `used` ever changes).
 */
type Entry = KeyView & { readonly org: OrgView | null; readonly loadedAt: number; used: boolean };

export interface CacheStats {
  hits: number;
  misses: number;
  negativeHits: number;
  evictions: number;
  storeErrors: number;
  staleServed: number;
  /** Misses answered without a query because the lookup budget was spent. */
  missesThrottled: number;
}

export class KeyCache {
  private readonly entries = new Map<string, Entry>();
  /** Entries' load times are kept relative to this (the first load's time). */
  private base: number | undefined;
  private readonly negative = new Map<string, number>();
  /** The CLOCK hand over `entries`, and the oldest negative entry (see MapCursor). */
  private readonly hand = new MapCursor(this.entries);
  private readonly oldestNegative = new MapCursor(this.negative);
  private readonly inflight = new Map<string, Promise<KeyLookup>>();
  /** Bumped by every invalidation; a load that started before one is not cached. */
  private epoch = 0;
  readonly stats: CacheStats = { hits: 0, misses: 0, negativeHits: 0, evictions: 0, storeErrors: 0, staleServed: 0, missesThrottled: 0 };
  private tokens: number;
  private tokensAt = Number.NEGATIVE_INFINITY;

  private ttlMs: number;
  /** The current view of each organization, shared by its keys' entries. */
  private readonly orgViews = new Map<string, OrgView>();
  /** One array per distinct scope list. */
  private readonly scopeLists = new Map<string, readonly string[]>();

  constructor(
    private readonly source: KeySource,
    private readonly opts: KeyCacheOptions,
  ) {
    this.ttlMs = opts.ttlMs;
    this.tokens = opts.missQueriesPerSecond ?? 0;
  }

  /** Takes one store lookup from the budget; false when it is spent. */
  private takeLookup(nowMs: number): boolean {
    const rate = this.opts.missQueriesPerSecond ?? 0;
    if (rate <= 0) return true;
    if (nowMs > this.tokensAt) {
      this.tokens = Math.min(rate, this.tokens + ((nowMs - this.tokensAt) * rate) / 1000);
      this.tokensAt = nowMs;
    }
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }

  /** The positive lifetime in force; `undefined` restores the configured one. */
  setTtl(ms?: number): void {
    this.ttlMs = ms === undefined ? this.opts.ttlMs : Math.min(ms, this.opts.ttlMs);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The cached answer if fresh, else undefined (the caller then calls lookup). */
  peek(digest: string, nowMs: number): KeyLookup | undefined {
    const e = this.entries.get(digest);
    if (e && this.age(e, nowMs) < this.ttlMs) {
      this.stats.hits++;
      e.used = true;
      return { kind: 'found', key: e, org: e.org };
    }
    const neg = this.negative.get(digest);
    if (neg !== undefined && neg > nowMs) {
      this.stats.negativeHits++;
      return { kind: 'unknown' };
    }
    return undefined;
  }

  lookup(digest: string, nowMs: number): Promise<KeyLookup> | KeyLookup {
    const cached = this.peek(digest, nowMs);
    if (cached) return cached;
    const pending = this.inflight.get(digest);
    if (pending) return pending;
    this.stats.misses++;
    if (!this.takeLookup(nowMs)) {
      this.stats.missesThrottled++;
      return this.staleOr(digest, nowMs);
    }
    const p = this.load(digest, nowMs).finally(() => this.inflight.delete(digest));
    this.inflight.set(digest, p);
    return p;
  }

  private async load(digest: string, nowMs: number): Promise<KeyLookup> {
    const epoch = this.epoch;
    let found;
    try {
      found = await this.source.load(Buffer.from(digest, 'latin1').toString('hex'));
    } catch {
      this.stats.storeErrors++;
      return this.staleOr(digest, nowMs);
    }
    if (epoch !== this.epoch) {
      // Something changed while loading: answer this request, cache nothing.
      return found ? { kind: 'found', key: found.key, org: found.org } : { kind: 'unknown' };
    }
    if (!found) {
      this.forget(digest);
      this.forgetNegative(digest);
      if (this.negative.size >= this.opts.negativeMaxEntries) {
        const oldest = this.oldestNegative.current();
        if (oldest !== undefined) this.forgetNegative(oldest[0]);
      }
      this.negative.set(digest, nowMs + this.opts.negativeTtlMs);
      this.oldestNegative.mutated(digest);
      return { kind: 'unknown' };
    }
    this.forgetNegative(digest);
    const org = found.org && this.sharedOrg(found.org);
    const entry = this.entry(found.key, org, nowMs);
    this.put(digest, entry);
    return { kind: 'found', key: entry, org };
  }

  /** An expired entry still within maxStaleMs, else unavailable. */
  private staleOr(digest: string, nowMs: number): KeyLookup {
    const stale = this.entries.get(digest);
    if (stale && this.age(stale, nowMs) < this.ttlMs + this.opts.maxStaleMs) {
      this.stats.staleServed++;
      return { kind: 'found', key: stale, org: stale.org };
    }
    return { kind: 'unavailable' };
  }

  private age(e: Entry, nowMs: number): number {
    return nowMs - this.base! - e.loadedAt;
  }

  private sharedOrg(o: OrgView): OrgView {
    const prev = this.orgViews.get(o.id);
    if (
      prev &&
      prev.active === o.active &&
      prev.rateLimitPerMinute === o.rateLimitPerMinute &&
      prev.monthlyQuota === o.monthlyQuota &&
      prev.billingAnchorDay === o.billingAnchorDay
    ) {
      return prev;
    }
    if (!prev && this.orgViews.size >= SHARED_MAX) this.orgViews.clear();
    this.orgViews.set(o.id, o);
    return o;
  }

  private entry(k: KeyView, org: OrgView | null, loadedAt: number): Entry {
    let scopes = k.scopes;
    if (scopes.length === 0) scopes = NO_SCOPES;
    else {
      const id = scopes.join('\u0000');
      const prev = this.scopeLists.get(id);
      if (prev) scopes = prev;
      else {
        if (this.scopeLists.size >= SHARED_MAX) this.scopeLists.clear();
        this.scopeLists.set(id, scopes);
      }
    }
    // The organization's id string is shared too (the row's copy is dropped).
    const organizationId = org && org.id === k.organizationId ? org.id : k.organizationId;
    return {
      id: k.id,
      organizationId,
      environment: k.environment,
      scopes,
      expiresAt: k.expiresAt,
      revokedAt: k.revokedAt,
      rateLimitPerMinute: k.rateLimitPerMinute,
      org,
      loadedAt: smallInt(loadedAt - (this.base ??= loadedAt)),
      used: false,
    };
  }

  private put(digest: string, e: Entry): void {
    this.forget(digest);
    this.entries.set(digest, e);
    this.hand.mutated(digest);
    if (this.entries.size > this.opts.maxEntries) this.evict();
  }

  /** CLOCK: the hand passes over marked entries, unmarking them, and evicts the first unmarked one. */
  private evict(): void {
    // After one full turn every entry is unmarked, so this ends.
    for (let n = this.entries.size; n >= 0; n--) {
      const c = this.hand.current();
      if (c === undefined) return;
      const e = c[1];
      if (!e.used || n === 0) {
        this.forget(c[0]);
        this.stats.evictions++;
        return;
      }
      e.used = false;
      this.hand.advance();
    }
  }

  private forget(digest: string): void {
    this.hand.mutated(digest);
    this.entries.delete(digest);
  }

  private forgetNegative(digest: string): void {
    this.oldestNegative.mutated(digest);
    this.negative.delete(digest);
  }

  /**
   * Drops a key and any negative entry of its hash: by hash when given (as KeyAdmin in
   * this process does), else by id, with one pass over the entries.
   */
  invalidateKey(keyId: string, keyHash?: string): void {
    if (keyHash === undefined) return this.invalidateKeys([keyId]);
    this.epoch++;
    const h = cacheKeyOfHash(keyHash);
    this.forget(h);
    this.forgetNegative(h);
    this.inflight.delete(h);
  }

  /** Drops keys by id (change notifications carry no hash): one pass over the entries for all of them. */
  invalidateKeys(keyIds: Iterable<string>): void {
    const ids = new Set(keyIds);
    if (ids.size === 0) return;
    this.epoch++;
    // A load in flight cannot be told apart by id: none of them is cached (epoch), and
    // later Checks query again.
    this.inflight.clear();
    for (const [h, e] of this.entries) if (ids.has(e.id)) this.forget(h);
  }

  /** Drops every key of an organization. */
  invalidateOrg(orgId: string): void {
    this.epoch++;
    this.inflight.clear();
    for (const [h, e] of this.entries) if (e.organizationId === orgId) this.forget(h);
  }

  clear(): void {
    this.epoch++;
    this.inflight.clear();
    this.entries.clear();
    this.negative.clear();
    this.hand.reset();
    this.oldestNegative.reset();
  }
}
