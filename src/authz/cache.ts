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
 *    `negativeMaxEntries`, oldest evicted first; expired ones are dropped as new ones
 *    arrive, so an idle flood's entries do not stay until the maximum is reached; a flood of random well-formed keys
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
 *  - Entries are keyed by the keyed hash's 32 bytes, given as a latin1 string
 *    (CredentialHasher.digest); the store is asked by the hex hash.
 *  - Rotation of the hash secret (options.previous set): a credential whose primary digest
 *    the store does not know is looked up once more under the previous secret's digest
 *    (a second store lookup, also taken from the budget) before it counts as unknown,
 *    so one negative entry, under the primary digest, covers both misses. A key found
 *    that way is cached under its primary digest (later Checks hash once and hit) and
 *    reported to onFoundByPrevious, which rewrites its stored hash. Until the cache
 *    reloads it by the primary hash, invalidateKey also drops it when given the old
 *    stored hash (an id → digest map, only for keys found this way). Callers pass the
 *    credential to lookup() for this; the cached path never uses it.
 *  - Memory: positive entries live in typed arrays (key-table.ts: the hash bytes, the
 *    fields, references to one OrgView per organization while its fields are unchanged
 *    and to one scopes array per distinct scope list), about 110 bytes a key plus its
 *    id string (docs/benchmarks.md, "Memory"). A hit returns a new KeyView; returned
 *    views are never mutated.
 */
import { MapCursor } from '../util/map-cursor';
import { KeyTable } from './key-table';
import type { KeyLookup, KeyView, OrgView } from './decision';

/** The cache key of a stored (hex) key hash: the 32 hash bytes as a latin1 string. */
export function cacheKeyOfHash(hexHash: string): string {
  return Buffer.from(hexHash, 'hex').toString('latin1');
}

export interface KeySource {
  /** One indexed query: the key by hash (hex), with its organization. Throws if the store fails. */
  load(keyHash: string): Promise<{ key: KeyView; org: OrgView | null } | null>;
}

/** The cache's part in a rotation of the hash secret (see the contract above). */
export interface PreviousSecretLookup {
  /** The credential's digest (latin1, as CredentialHasher.digest) under the previous secret. */
  digest(credential: string): string;
  /**
   * A key was found under the previous secret: its stored hash (hex) `previousHash`
   * should become `primaryHash`. Called on the miss path; must not throw.
   */
  onFoundByPrevious(keyId: string, primaryHash: string, previousHash: string): void;
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
  /** Set while the hash secret is rotated (KEYWARD_HASH_SECRET_PREVIOUS). */
  previous?: PreviousSecretLookup;
}

/** Bound of the shared organization views and scope lists (cleared when exceeded). */
const SHARED_MAX = 100_000;
const NO_SCOPES: readonly string[] = Object.freeze([]);

export interface CacheStats {
  hits: number;
  misses: number;
  negativeHits: number;
  evictions: number;
  storeErrors: number;
  staleServed: number;
  /**
   * Misses answered without a query because the lookup budget was spent (including,
   * during a rotation, a primary miss whose second lookup found the budget spent).
   */
  missesThrottled: number;
  /** Lookups under the previous hash secret (store queries besides misses). */
  previousLookups: number;
  /** Keys those lookups found (their stored hashes are then rewritten). */
  previousHits: number;
}

export class KeyCache {
  /** The cached keys (typed arrays; see key-table.ts). */
  private readonly table = new KeyTable();
  private readonly negative = new Map<string, number>();
  /** The oldest negative entry (see MapCursor). */
  private readonly oldestNegative = new MapCursor(this.negative);
  private readonly inflight = new Map<string, Promise<KeyLookup>>();
  /** Bumped by every invalidation; a load that started before one is not cached. */
  private epoch = 0;
  readonly stats: CacheStats = {
    hits: 0,
    misses: 0,
    negativeHits: 0,
    evictions: 0,
    storeErrors: 0,
    staleServed: 0,
    missesThrottled: 0,
    previousLookups: 0,
    previousHits: 0,
  };
  /**
   * Keys found under the previous hash secret and cached under their primary digest,
   * by id, until reloaded by the primary hash: their stored hash may still be the old
   * one, and invalidateKey(id, oldHash) must find them. At most maxEntries (oldest
   * dropped first).
   */
  private readonly rehashed = new Map<string, string>();
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

  /** Negative entries held (expired ones included until they are dropped). */
  get negativeSize(): number {
    return this.negative.size;
  }

  get size(): number {
    return this.table.size;
  }

  /** The cached answer if fresh, else undefined (the caller then calls lookup). */
  peek(digest: string, nowMs: number): KeyLookup | undefined {
    const slot = this.table.find(digest);
    if (slot >= 0 && nowMs - this.table.loadedAt(slot) < this.ttlMs) {
      this.stats.hits++;
      this.table.mark(slot);
      return { kind: 'found', key: this.table.view(slot), org: this.table.org(slot) };
    }
    const neg = this.negative.get(digest);
    if (neg !== undefined && neg > nowMs) {
      this.stats.negativeHits++;
      return { kind: 'unknown' };
    }
    return undefined;
  }

  /**
   * The key of `digest` (its primary digest). `credential` is needed only while the
   * hash secret is rotated, to look it up under the previous secret on a miss.
   */
  lookup(digest: string, nowMs: number, credential?: string): Promise<KeyLookup> | KeyLookup {
    const cached = this.peek(digest, nowMs);
    if (cached) return cached;
    const pending = this.inflight.get(digest);
    if (pending) return pending;
    this.stats.misses++;
    if (!this.takeLookup(nowMs)) {
      this.stats.missesThrottled++;
      return this.staleOr(digest, nowMs);
    }
    const p = this.load(digest, nowMs, credential).finally(() => this.inflight.delete(digest));
    this.inflight.set(digest, p);
    return p;
  }

  private async load(digest: string, nowMs: number, credential: string | undefined): Promise<KeyLookup> {
    const epoch = this.epoch;
    let found;
    let byPrevious = false;
    try {
      found = await this.source.load(Buffer.from(digest, 'latin1').toString('hex'));
      const previous = this.opts.previous;
      if (!found && previous && credential !== undefined) {
        if (!this.takeLookup(nowMs)) {
          this.stats.missesThrottled++;
          return this.staleOr(digest, nowMs);
        }
        this.stats.previousLookups++;
        const previousHash = Buffer.from(previous.digest(credential), 'latin1').toString('hex');
        found = await this.source.load(previousHash);
        if (found) {
          byPrevious = true;
          this.stats.previousHits++;
          previous.onFoundByPrevious(found.key.id, Buffer.from(digest, 'latin1').toString('hex'), previousHash);
        }
      }
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
      // Entries are in expiry order (one TTL for all): expired ones leave from the
      // front, a few per insert, so the map holds about rate x TTL, not its maximum.
      for (let n = 0; n < 32; n++) {
        const oldest = this.oldestNegative.current();
        if (oldest === undefined || oldest[1] > nowMs) break;
        this.forgetNegative(oldest[0]);
      }
      if (this.negative.size >= this.opts.negativeMaxEntries) {
        const oldest = this.oldestNegative.current();
        if (oldest !== undefined) this.forgetNegative(oldest[0]);
      }
      this.negative.set(digest, nowMs + this.opts.negativeTtlMs);
      this.oldestNegative.mutated(digest);
      return { kind: 'unknown' };
    }
    this.forgetNegative(digest);
    if (byPrevious) this.noteRehashed(found.key.id, digest);
    else if (this.rehashed.size > 0) this.rehashed.delete(found.key.id); // the store has the primary hash now
    const org = found.org && this.sharedOrg(found.org);
    this.table.put(digest, found.key, org, this.sharedScopes(found.key.scopes), nowMs);
    while (this.table.size > this.opts.maxEntries && this.table.evictOne()) this.stats.evictions++;
    return { kind: 'found', key: found.key, org };
  }

  private noteRehashed(keyId: string, digest: string): void {
    this.rehashed.delete(keyId);
    if (this.rehashed.size >= this.opts.maxEntries) {
      const oldest = this.rehashed.keys().next();
      if (!oldest.done) this.rehashed.delete(oldest.value);
    }
    this.rehashed.set(keyId, digest);
  }

  /** An expired entry still within maxStaleMs, else unavailable. */
  private staleOr(digest: string, nowMs: number): KeyLookup {
    const slot = this.table.find(digest);
    if (slot >= 0 && nowMs - this.table.loadedAt(slot) < this.ttlMs + this.opts.maxStaleMs) {
      this.stats.staleServed++;
      return { kind: 'found', key: this.table.view(slot), org: this.table.org(slot) };
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
      prev.billingAnchorDay === o.billingAnchorDay &&
      String(prev.quotaAlertPercents) === String(o.quotaAlertPercents)
    ) {
      return prev;
    }
    if (!prev && this.orgViews.size >= SHARED_MAX) this.orgViews.clear();
    this.orgViews.set(o.id, o);
    return o;
  }

  /** One array per distinct scope list. */
  private sharedScopes(scopes: readonly string[]): readonly string[] {
    if (scopes.length === 0) return NO_SCOPES;
    const id = scopes.join('\u0000');
    const prev = this.scopeLists.get(id);
    if (prev) return prev;
    if (this.scopeLists.size >= SHARED_MAX) this.scopeLists.clear();
    this.scopeLists.set(id, scopes);
    return scopes;
  }

  private forget(digest: string): void {
    const slot = this.table.find(digest);
    if (slot >= 0) this.table.remove(slot);
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
    // Found under the previous secret: cached under its primary digest, whichever hash
    // the store held when the caller read it.
    const moved = this.rehashed.size > 0 ? this.rehashed.get(keyId) : undefined;
    if (moved !== undefined && moved !== h) {
      this.forget(moved);
      this.forgetNegative(moved);
      this.inflight.delete(moved);
    }
  }

  /** Drops keys by id (change notifications carry no hash): one pass over the entries for all of them. */
  invalidateKeys(keyIds: Iterable<string>): void {
    const ids = new Set(keyIds);
    if (ids.size === 0) return;
    this.epoch++;
    // A load in flight cannot be told apart by id: none of them is cached (epoch), and
    // later Checks query again.
    this.inflight.clear();
    this.table.forEach((slot) => ids.has(this.table.id(slot)) && this.table.remove(slot));
  }

  /** Drops every key of an organization. */
  invalidateOrg(orgId: string): void {
    this.epoch++;
    this.inflight.clear();
    this.table.forEach((slot) => this.table.organizationId(slot) === orgId && this.table.remove(slot));
  }

  clear(): void {
    this.epoch++;
    this.inflight.clear();
    this.table.clear();
    this.rehashed.clear();
    this.negative.clear();
    this.oldestNegative.reset();
  }
}
