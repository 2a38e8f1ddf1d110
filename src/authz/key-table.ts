/**
 * The key cache's storage: cached keys in parallel typed arrays, found by their
 * 32-byte keyed hash through an open-addressing hash table, so that a cached key costs
 * about 110 bytes plus its id string instead of a JS object, a hash string and a Map
 * slot (about 250 bytes).
 *
 * Contract:
 *  - Keys of the table are the 32 hash bytes, given as a 32-character latin1 string
 *    (CredentialHasher.digest). Values are a key's fields; view(slot) builds a fresh
 *    KeyView object for a caller (views are never shared or mutated afterwards).
 *  - find() is O(1) expected (linear probing, load at most 1/2, the hash's own first
 *    4 bytes as the table hash: it is an HMAC output, uniform and not chosen by a
 *    caller without the server secret).
 *  - put() inserts or replaces; remove() deletes with backward shifting (no
 *    tombstones, so lookups never slow down with churn). Slots are reused.
 *  - The CLOCK mark (mark(slot)) and evictOne() give second-chance eviction: the hand
 *    passes over marked slots once, unmarking them, and evicts the first unmarked one.
 *  - Organization views and scope lists are stored by reference (the cache shares them
 *    between keys); the key id and organization id strings are kept as given.
 */
import type { KeyView, OrgView } from './decision';

const EMPTY = -1;
const HASH_BYTES = 32;

export class KeyTable {
  private capacity = 0;
  private used = 0;
  private count = 0;
  private readonly free: number[] = [];
  private hand = 0;
  /** Open-addressing index: slot number or EMPTY; size a power of two, at least 2 × capacity. */
  private table = new Int32Array(0).fill(EMPTY);
  private mask = 0;
  private hashes = new Uint8Array(0);
  private loaded = new Float64Array(0);
  private expires = new Float64Array(0);
  private revoked = new Float64Array(0);
  private rate = new Float64Array(0);
  private flags = new Uint8Array(0); // bit 0: in use, bit 1: test environment, bit 2: CLOCK mark, bit 3: disabled
  private ids: (string | undefined)[] = [];
  private orgIds: (string | undefined)[] = [];
  private orgs: (OrgView | null | undefined)[] = [];
  private scopeLists: (readonly string[] | undefined)[] = [];

  get size(): number {
    return this.count;
  }

  /** The slot holding this hash, or -1. */
  find(digest: string): number {
    if (this.count === 0) return -1;
    for (let i = homeOf(digest) & this.mask; ; i = (i + 1) & this.mask) {
      const s = this.table[i]!;
      if (s === EMPTY) return -1;
      if (this.sameHash(s, digest)) return s;
    }
  }

  /** Inserts or replaces the entry of `digest`; returns its slot. */
  put(digest: string, key: KeyView, org: OrgView | null, scopes: readonly string[], loadedAt: number): number {
    let s = this.find(digest);
    if (s < 0) {
      s = this.alloc();
      for (let i = 0; i < HASH_BYTES; i++) this.hashes[s * HASH_BYTES + i] = digest.charCodeAt(i);
      this.place(s);
      this.count++;
    }
    this.flags[s] = 1 | (key.environment === 'test' ? 2 : 0) | (key.disabled ? 8 : 0);
    this.loaded[s] = loadedAt;
    this.expires[s] = key.expiresAt ?? NaN;
    this.revoked[s] = key.revokedAt ?? NaN;
    this.rate[s] = key.rateLimitPerMinute ?? NaN;
    this.ids[s] = key.id;
    this.orgIds[s] = org && org.id === key.organizationId ? org.id : key.organizationId;
    this.orgs[s] = org;
    this.scopeLists[s] = scopes;
    return s;
  }

  loadedAt(slot: number): number {
    return this.loaded[slot]!;
  }

  org(slot: number): OrgView | null {
    return this.orgs[slot]!;
  }

  id(slot: number): string {
    return this.ids[slot]!;
  }

  organizationId(slot: number): string {
    return this.orgIds[slot]!;
  }

  mark(slot: number): void {
    this.flags[slot] = this.flags[slot]! | 4;
  }

  /** A new KeyView of the slot's key. */
  view(slot: number): KeyView {
    const e = this.expires[slot]!;
    const r = this.revoked[slot]!;
    const l = this.rate[slot]!;
    return {
      id: this.ids[slot]!,
      organizationId: this.orgIds[slot]!,
      environment: this.flags[slot]! & 2 ? 'test' : 'live',
      scopes: this.scopeLists[slot]!,
      expiresAt: e === e ? e : null,
      revokedAt: r === r ? r : null,
      disabled: (this.flags[slot]! & 8) !== 0,
      rateLimitPerMinute: l === l ? l : null,
    };
  }

  remove(slot: number): void {
    if (!(this.flags[slot]! & 1)) return;
    // Find the slot's place in the index, then shift the probe chain back over it.
    let i = this.homeOfSlot(slot) & this.mask;
    while (this.table[i] !== slot) i = (i + 1) & this.mask;
    this.table[i] = EMPTY;
    for (let j = (i + 1) & this.mask; this.table[j] !== EMPTY; j = (j + 1) & this.mask) {
      const s = this.table[j]!;
      const home = this.homeOfSlot(s) & this.mask;
      // s may move to i if its home is not in the cyclic range (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        this.table[i] = s;
        this.table[j] = EMPTY;
        i = j;
      }
    }
    this.flags[slot] = 0;
    this.ids[slot] = undefined;
    this.orgIds[slot] = undefined;
    this.orgs[slot] = undefined;
    this.scopeLists[slot] = undefined;
    this.free.push(slot);
    this.count--;
  }

  /** Calls f with every slot in use (f may remove the slot it is given). */
  forEach(f: (slot: number) => void): void {
    for (let s = 0; s < this.used; s++) if (this.flags[s]! & 1) f(s);
  }

  /** CLOCK: removes one unmarked entry (unmarking marked ones on the way); false when empty. */
  evictOne(): boolean {
    if (this.count === 0) return false;
    for (;;) {
      if (this.hand >= this.used) this.hand = 0;
      const s = this.hand++;
      const f = this.flags[s]!;
      if (!(f & 1)) continue;
      if (f & 4) {
        this.flags[s] = f & ~4;
        continue;
      }
      this.remove(s);
      return true;
    }
  }

  clear(): void {
    this.capacity = 0;
    this.used = 0;
    this.count = 0;
    this.free.length = 0;
    this.hand = 0;
    this.resize(0);
  }

  private sameHash(slot: number, digest: string): boolean {
    const base = slot * HASH_BYTES;
    for (let i = 0; i < HASH_BYTES; i++) if (this.hashes[base + i] !== digest.charCodeAt(i)) return false;
    return true;
  }

  private homeOfSlot(slot: number): number {
    const b = slot * HASH_BYTES;
    const h = this.hashes;
    return (h[b]! | (h[b + 1]! << 8) | (h[b + 2]! << 16) | (h[b + 3]! << 24)) >>> 0;
  }

  private place(slot: number): void {
    let i = this.homeOfSlot(slot) & this.mask;
    while (this.table[i] !== EMPTY) i = (i + 1) & this.mask;
    this.table[i] = slot;
  }

  private alloc(): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    if (this.used === this.capacity) this.resize(Math.max(1024, this.capacity * 2));
    return this.used++;
  }

  private resize(capacity: number): void {
    const grow = <T extends Float64Array | Uint8Array>(a: T, n: number): T => {
      const b = new (a.constructor as new (n: number) => T)(n);
      b.set(a.subarray(0, Math.min(a.length, n)));
      return b;
    };
    this.hashes = grow(this.hashes, capacity * HASH_BYTES);
    this.loaded = grow(this.loaded, capacity);
    this.expires = grow(this.expires, capacity);
    this.revoked = grow(this.revoked, capacity);
    this.rate = grow(this.rate, capacity);
    this.flags = grow(this.flags, capacity);
    if (capacity === 0) {
      this.ids = [];
      this.orgIds = [];
      this.orgs = [];
      this.scopeLists = [];
    }
    this.capacity = capacity;
    let size = 1;
    while (size < capacity * 2) size *= 2;
    this.table = new Int32Array(capacity === 0 ? 0 : size).fill(EMPTY);
    this.mask = capacity === 0 ? 0 : size - 1;
    for (let s = 0; s < this.used; s++) if (this.flags[s]! & 1) this.place(s);
  }
}

/** The table hash of a digest: its first 4 bytes. */
function homeOf(digest: string): number {
  return (digest.charCodeAt(0) | (digest.charCodeAt(1) << 8) | (digest.charCodeAt(2) << 16) | (digest.charCodeAt(3) << 24)) >>> 0;
}
