/**
 * The strict rate limit (KEYWARD_RATE_LIMIT_MODE=strict): 12 sub-window counters of 5 s
 * per key, counting every sub-window that overlaps the last 60 s in full, so no 60 s
 * span ever holds more than `limit` allowed requests; the in-memory limiter built on it.
 */
import { KeySlots } from './key-slots';
import { checkLimit } from './sliding-window';
import type { RateDecision, RateLimiter, RateLimiterStats } from './types';

/** Width of one sub-window, ms (60 s / 12). */
export const SUB_WINDOW_MS = 5_000;
/**
 * Sub-windows counted per decision: the current one and the 12 before it, i.e. every
 * sub-window that can overlap (t - 60 s, t] (60 s + one sub-window of history).
 */
export const SUB_WINDOWS = 13;
/**
 * A client steady at or below this fraction of its limit per minute is never refused:
 * it is refused only if rate × (60 s + 5 s) > limit, so the fraction is 60 / 65 = 92.3 %.
 */
export const STEADY_FRACTION = 60 / 65;

/**
 * Keys idle this long are dropped: 13 sub-windows (all counts 0) plus one, so that a call
 * for another key whose clock is up to 5 s ahead never drops counts this key still needs.
 */
const IDLE_SUB_WINDOWS = SUB_WINDOWS + 1;

export function subWindowOf(nowMs: number): number {
  return Math.floor(nowMs / SUB_WINDOW_MS);
}

/**
 * The decision from the counts as they stand after this call, oldest first
 * (`counts[SUB_WINDOWS - 1]` is the current sub-window `current`).
 *  - remaining = max(0, limit - sum): the next `remaining` requests are allowed at any
 *    time from now on (without other requests the sum never rises), and no more now.
 *  - resetSeconds: 0 when remaining > 0; else ceil(ms / 1000) where ms is the exact
 *    wait until enough of the oldest sub-windows have left for the sum to drop below limit.
 */
export function strictDecision(allowed: boolean, limit: number, counts: ArrayLike<number>, current: number, nowMs: number): RateDecision {
  let sum = 0;
  for (let j = 0; j < SUB_WINDOWS; j++) sum += counts[j]!;
  const remaining = Math.max(0, limit - sum);
  if (remaining > 0) return { allowed, limit, remaining, resetSeconds: 0 };
  // Sub-window (current - 12 + k) leaves the count at the start of sub-window current + 1 + k.
  let k = 0;
  while (sum >= limit) sum -= counts[k++]!;
  const waitMs = (current + k) * SUB_WINDOW_MS - nowMs;
  return { allowed, limit, remaining, resetSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
}

export interface StrictRateLimiterOptions {
  /** Most keys tracked at once; default 1,000,000. */
  maxKeys?: number;
}

/**
 * Per key a slot: its latest sub-window (`head`), a ring of 13 Uint32 counts indexed by
 * sub-window mod 13, and their sum (64 bytes a key, plus its Map entry). Freed slots are reused.
 */
class Rings {
  head = new Float64Array(1024);
  counts = new Uint32Array(1024 * SUB_WINDOWS);
  sum = new Uint32Array(1024);
  private used = 0;
  private readonly free: number[] = [];

  alloc(head: number): number {
    let i = this.free.pop();
    if (i === undefined) {
      if (this.used === this.head.length) this.grow();
      i = this.used++;
    }
    this.head[i] = head;
    this.counts.fill(0, i * SUB_WINDOWS, (i + 1) * SUB_WINDOWS);
    this.sum[i] = 0;
    return i;
  }

  release(i: number): void {
    this.free.push(i);
  }

  clear(): void {
    this.used = 0;
    this.free.length = 0;
  }

  /** Moves slot i forward to sub-window `to` (never back), zeroing the sub-windows passed; true if it moved. */
  roll(i: number, to: number): boolean {
    const head = this.head[i]!;
    if (to <= head) return false;
    const base = i * SUB_WINDOWS;
    let sum = this.sum[i]!;
    for (let s = head + 1, n = 0; s <= to && n < SUB_WINDOWS; s++, n++) {
      const at = base + (s % SUB_WINDOWS);
      sum -= this.counts[at]!;
      this.counts[at] = 0;
    }
    this.sum[i] = sum;
    this.head[i] = to;
    return true;
  }

  /** Adds `delta` to slot i's latest sub-window. */
  add(i: number, delta: 1 | -1): void {
    const at = i * SUB_WINDOWS + (this.head[i]! % SUB_WINDOWS);
    this.counts[at] = this.counts[at]! + delta;
    this.sum[i] = this.sum[i]! + delta;
  }

  /** The 13 counts of slot i, oldest first, as of sub-window `at` (>= head). */
  window(i: number, at: number, out: Uint32Array): Uint32Array {
    const head = this.head[i]!;
    const base = i * SUB_WINDOWS;
    for (let j = 0; j < SUB_WINDOWS; j++) {
      const s = at - (SUB_WINDOWS - 1) + j;
      out[j] = s <= head && s > head - SUB_WINDOWS ? this.counts[base + (s % SUB_WINDOWS)]! : 0;
    }
    return out;
  }

  private grow(): void {
    const n = this.head.length * 2;
    const head = new Float64Array(n);
    head.set(this.head);
    const counts = new Uint32Array(n * SUB_WINDOWS);
    counts.set(this.counts);
    const sum = new Uint32Array(n);
    sum.set(this.sum);
    this.head = head;
    this.counts = counts;
    this.sum = sum;
  }
}

/**
 * The strict limiter of one process; O(1) per call (O(13) for a refused one or a peek), no timers.
 *  - A request at t (sub-window b = floor(t / 5 s)) is allowed iff the sum of the counts of
 *    sub-windows b-12..b is < limit; only an allowed consume counts (into sub-window b).
 *  - A clock that goes back behind a key's latest sub-window is charged to that latest
 *    sub-window (per key time never goes back), so a step back never over-admits.
 *  - refund takes one back from the key's latest sub-window (if it is > 0).
 *  - Idle keys (14 sub-windows without a request: all counts 0) are dropped lazily, 2 per
 *    call from the front of a Map ordered by latest sub-window; at most `maxKeys` are kept,
 *    a new key beyond that evicts the front one (which forgets its counts).
 */
export class StrictRateLimiter implements RateLimiter {
  readonly backend = 'memory' as const;
  private readonly rings = new Rings();
  /** Key → slot, ordered by the slot's latest sub-window (oldest first). */
  private readonly slotsByKey: KeySlots;
  private readonly scratch = new Uint32Array(SUB_WINDOWS);
  private allowed = 0;
  private limited = 0;

  constructor(opts: StrictRateLimiterOptions = {}) {
    this.slotsByKey = new KeySlots(opts.maxKeys, (slot) => this.rings.release(slot));
  }

  consume(keyId: string, limit: number, nowMs: number): RateDecision {
    checkLimit(limit);
    const now = Math.floor(nowMs);
    const sub = subWindowOf(now);
    this.sweep(now);
    const rings = this.rings;
    let i = this.slotsByKey.get(keyId);
    if (i === undefined) {
      this.slotsByKey.makeRoom();
      i = rings.alloc(sub);
      this.slotsByKey.add(keyId, i);
    } else if (rings.roll(i, sub)) {
      this.slotsByKey.moved(keyId, i);
    }
    const ok = rings.sum[i]! < limit;
    if (ok) {
      rings.add(i, 1);
      this.allowed++;
    } else {
      this.limited++;
    }
    const remaining = limit - rings.sum[i]!;
    if (remaining > 0) return { allowed: ok, limit, remaining, resetSeconds: 0 };
    return strictDecision(ok, limit, rings.window(i, rings.head[i]!, this.scratch), rings.head[i]!, now);
  }

  refund(keyId: string): void {
    const i = this.slotsByKey.get(keyId);
    if (i === undefined) return;
    if (this.rings.counts[i * SUB_WINDOWS + (this.rings.head[i]! % SUB_WINDOWS)]! > 0) this.rings.add(i, -1);
  }

  peek(keyId: string, limit: number, nowMs: number): Promise<RateDecision> {
    return new Promise((resolve) => resolve(this.peekNow(keyId, limit, nowMs)));
  }

  private peekNow(keyId: string, limit: number, nowMs: number): RateDecision {
    checkLimit(limit);
    const now = Math.floor(nowMs);
    this.sweep(now);
    const i = this.slotsByKey.get(keyId);
    if (i === undefined) return { allowed: true, limit, remaining: limit, resetSeconds: 0 };
    const at = Math.max(subWindowOf(now), this.rings.head[i]!);
    const counts = this.rings.window(i, at, this.scratch);
    let sum = 0;
    for (let j = 0; j < SUB_WINDOWS; j++) sum += counts[j]!;
    return strictDecision(sum < limit, limit, counts, at, now);
  }

  reset(keyId: string): Promise<void> {
    this.slotsByKey.delete(keyId);
    return Promise.resolve();
  }

  /** Drops up to `max` keys at the front if idle for 14 sub-windows or more (see IDLE_SUB_WINDOWS). */
  sweep(nowMs: number, max = 2): void {
    this.slotsByKey.sweep(this.rings.head, subWindowOf(nowMs), IDLE_SUB_WINDOWS, max);
  }

  stats(): RateLimiterStats {
    return {
      backend: 'memory',
      trackedKeys: this.slotsByKey.size,
      allowed: this.allowed,
      limited: this.limited,
      redisErrors: 0,
      fallbackDecisions: 0,
    };
  }

  close(): Promise<void> {
    this.slotsByKey.clear();
    this.rings.clear();
    return Promise.resolve();
  }
}
