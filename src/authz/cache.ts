/**
 * The key cache of the data plane: what a Check needs about a key and its
 * organization, by keyed hash, so a key seen recently is decided without the store.
 *
 * Contract:
 *  - Positive entries (key + organization) live at most `ttlMs`; then the next Check
 *    reloads them. At most `maxEntries`, least recently used evicted first.
 *  - Negative entries (hashes the store does not know) live `negativeTtlMs`, at most
 *    `negativeMaxEntries`, oldest evicted first; a flood of random well-formed keys
 *    therefore reaches the store at most once per distinct key per negativeTtlMs.
 *  - Concurrent misses for one hash share one store query.
 *  - Store lookups are budgeted (missQueriesPerSecond): over the budget a miss is
 *    answered like a store failure (below), without a query.
 *  - When the store fails, an expired positive entry younger than `maxStaleMs` is
 *    still used; otherwise the lookup is `unavailable` (never an allow).
 *  - invalidateKey / invalidateOrg drop entries at once (KeyAdmin changes, in this
 *    process or, through the change listener, in another).
 *  - setTtl shortens or restores the positive lifetime (a shorter one while change
 *    notifications cannot be received).
 *  - Entries are keyed by the keyed hash's 32 bytes as a latin1 string (CredentialHasher
 *    .digest; half the memory of hex); the store is asked by the hex hash.
 *  - Memory: entries share one OrgView per organization (while its fields are
 *    unchanged) and one scopes array per distinct scope list, so a cached key costs
 *    little more than its own id, hash and window (README, "Measured figures").
 *    Cached views are never mutated.
 */
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

/** Bound of the shared organization views and scope lists (cleared when exceeded). */
const SHARED_MAX = 100_000;
const NO_SCOPES: readonly string[] = Object.freeze([]);

/** A cached key: the key's view itself, with its organization and load time (one object per key). */
type Entry = KeyView & { readonly org: OrgView | null; readonly loadedAt: number };

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
  private readonly byKeyId = new Map<string, string>();
  private readonly negative = new Map<string, number>();
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
    if (e && nowMs - e.loadedAt < this.ttlMs) {
      this.stats.hits++;
      // LRU: move to the back.
      this.entries.delete(digest);
      this.entries.set(digest, e);
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
      if (this.negative.size >= this.opts.negativeMaxEntries) {
        const oldest = this.negative.keys().next().value;
        if (oldest !== undefined) this.negative.delete(oldest);
      }
      this.negative.set(digest, nowMs + this.opts.negativeTtlMs);
      return { kind: 'unknown' };
    }
    this.negative.delete(digest);
    const org = found.org && this.sharedOrg(found.org);
    const entry = this.entry(found.key, org, nowMs);
    this.put(digest, entry);
    return { kind: 'found', key: entry, org };
  }

  /** An expired entry still within maxStaleMs, else unavailable. */
  private staleOr(digest: string, nowMs: number): KeyLookup {
    const stale = this.entries.get(digest);
    if (stale && nowMs - stale.loadedAt < this.ttlMs + this.opts.maxStaleMs) {
      this.stats.staleServed++;
      return { kind: 'found', key: stale, org: stale.org };
    }
    return { kind: 'unavailable' };
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
      loadedAt,
    };
  }

  private put(digest: string, e: Entry): void {
    this.entries.delete(digest);
    this.entries.set(digest, e);
    this.byKeyId.set(e.id, digest);
    while (this.entries.size > this.opts.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.forget(oldest);
      this.stats.evictions++;
    }
  }

  private forget(digest: string): void {
    const e = this.entries.get(digest);
    if (!e) return;
    this.entries.delete(digest);
    if (this.byKeyId.get(e.id) === digest) this.byKeyId.delete(e.id);
  }

  /** Drops a key, by id or hash (both when known), and any negative entry of the hash. */
  invalidateKey(keyId: string, keyHash?: string): void {
    this.epoch++;
    const h = keyHash !== undefined ? cacheKeyOfHash(keyHash) : this.byKeyId.get(keyId);
    if (h !== undefined) {
      this.forget(h);
      this.negative.delete(h);
      this.inflight.delete(h);
    }
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
    this.byKeyId.clear();
    this.negative.clear();
  }
}
