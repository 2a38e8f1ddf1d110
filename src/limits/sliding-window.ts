/**
 * The sliding-window counter, and the in-memory rate limiter built on it.
 *
 * Algorithm (shared with the Redis limiter, which runs the same test in Lua):
 *  - Time is cut into fixed 60 s windows aligned to the epoch: windowStart =
 *    floor(now / 60000) * 60000, elapsed = now - windowStart. Times are whole
 *    milliseconds (fractions are floored).
 *  - Per key: `curr` requests counted in the current window, `prev` in the one before.
 *    Moving into the next window: prev = curr, curr = 0; two or more windows on: both 0.
 *  - estimate = prev * (60000 - elapsed) / 60000 + curr. A request is allowed iff
 *    estimate + 1 <= limit; only an allowed consume counts (curr++).
 *    The test is done in integers, scaled by 60000, so it is exact at every edge.
 *  - remaining = max(0, floor(limit - estimate)), after this request for a consume.
 *  - resetSeconds = ceil(t / 1000) where t is the exact number of ms until, with no
 *    further requests, one more request would be allowed; 0 when remaining > 0, and
 *    >= 1 whenever a request is denied. A request at now + resetSeconds * 1000 is
 *    allowed and one at now + (resetSeconds - 1) * 1000 is not (the estimate never
 *    rises without requests: at a window boundary it carries over unchanged, then decays).
 *
 * MemoryRateLimiter: one process's limits; O(1) per call, no timers.
 *  - Per active key a slot {windowStart, prev, curr} in typed arrays, found through
 *    a Map ordered by window start: a consume that moves a key into a newer window
 *    moves it to the back (at most once a window per key; a consume within the same
 *    window leaves the Map alone, which keeps it free of deleted-entry holes).
 *  - Idle keys go lazily: each consume and peek looks at up to 2 keys at the front
 *    (the oldest windows) and drops those idle for 2 windows or more (both counts are
 *    then 0, so dropping changes no decision). A key therefore outlives its use only
 *    while traffic is too low to sweep it, and at most `maxKeys` (default 1,000,000)
 *    are kept: a new key beyond that evicts the one at the front, whose last active
 *    window is the oldest (it forgets its counts: under that pressure a key may get up
 *    to one more window's worth).
 *  - If `nowMs` goes back into an earlier window than a key's (clock step), that key
 *    is judged in its own window at elapsed 0 (the previous count weighs fully).
 */
import { KeySlots } from './key-slots';
import type { RateDecision, RateLimiter, RateLimiterStats } from './types';

export const WINDOW_MS = 60_000;
/** Keys idle this long have both counts 0 and are dropped. */
const IDLE_MS = 2 * WINDOW_MS;
const SWEEP_PER_CALL = 2;

export function windowStartOf(nowMs: number): number {
  return Math.floor(nowMs / WINDOW_MS) * WINDOW_MS;
}

/** Would one more request be allowed with these counts at `elapsed` ms into the current window? */
export function admits(limit: number, prev: number, curr: number, elapsed: number): boolean {
  return prev * (WINDOW_MS - elapsed) + (curr + 1) * WINDOW_MS <= limit * WINDOW_MS;
}

/** Exact ms until one more request is allowed (0 if it is now), with no further requests. */
export function msUntilAdmitted(limit: number, prev: number, curr: number, elapsed: number): number {
  const W = WINDOW_MS;
  // In this window: prev * (W - elapsed - t) <= (limit - curr - 1) * W.
  const room = (limit - curr - 1) * W;
  if (room >= 0) {
    if (prev * (W - elapsed) <= room) return 0;
    // prev > 0 here; the smallest whole t, at most W - elapsed (room >= 0).
    return W - elapsed - Math.floor(room / prev);
  }
  // curr alone is too many: wait for the next window, where prev' = curr and curr' = 0:
  // curr * (W - t') <= (limit - 1) * W, t' <= W (at 2 windows on, everything is 0).
  const nextRoom = (limit - 1) * W;
  const t2 = curr * W <= nextRoom ? 0 : W - Math.floor(nextRoom / curr);
  return W - elapsed + t2;
}

/** The decision for the counts as they stand after this call (after the spend, if any). */
export function decision(allowed: boolean, limit: number, prev: number, curr: number, elapsed: number): RateDecision {
  const scaled = limit * WINDOW_MS - prev * (WINDOW_MS - elapsed) - curr * WINDOW_MS;
  const remaining = Math.max(0, Math.floor(scaled / WINDOW_MS));
  const resetSeconds = remaining > 0 ? 0 : Math.ceil(msUntilAdmitted(limit, prev, curr, elapsed) / 1000);
  return { allowed, limit, remaining, resetSeconds };
}

export function checkLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit <= 0) throw new RangeError(`rate limit must be a positive integer, got ${limit}`);
}

interface Window {
  windowStart: number;
  prev: number;
  curr: number;
}

export interface MemoryRateLimiterOptions {
  /** Most keys tracked at once; default 1,000,000. */
  maxKeys?: number;
}

/**
 * The windows, in parallel typed arrays indexed by slot (about 16 bytes a key plus
 * its Map entry, instead of an object per key); freed slots are reused.
 */
class Slots {
  start = new Float64Array(1024);
  prev = new Uint32Array(1024);
  curr = new Uint32Array(1024);
  private used = 0;
  private readonly free: number[] = [];

  alloc(windowStart: number): number {
    let i = this.free.pop();
    if (i === undefined) {
      if (this.used === this.start.length) this.grow();
      i = this.used++;
    }
    this.start[i] = windowStart;
    this.prev[i] = 0;
    this.curr[i] = 0;
    return i;
  }

  release(i: number): void {
    this.free.push(i);
  }

  clear(): void {
    this.used = 0;
    this.free.length = 0;
  }

  /** Moves slot i's counts into the window containing `now` (never back into an earlier one); true if it moved. */
  roll(i: number, now: number): boolean {
    const ws = windowStartOf(now);
    const start = this.start[i]!;
    if (ws <= start) return false;
    this.prev[i] = ws - start === WINDOW_MS ? this.curr[i]! : 0;
    this.curr[i] = 0;
    this.start[i] = ws;
    return true;
  }

  private grow(): void {
    const n = this.start.length * 2;
    const start = new Float64Array(n);
    start.set(this.start);
    const prev = new Uint32Array(n);
    prev.set(this.prev);
    const curr = new Uint32Array(n);
    curr.set(this.curr);
    this.start = start;
    this.prev = prev;
    this.curr = curr;
  }
}

export class MemoryRateLimiter implements RateLimiter {
  readonly backend = 'memory' as const;
  private readonly slots = new Slots();
  /** Key → slot, ordered by the slot's window start (oldest first). */
  private readonly windows: KeySlots;
  private allowed = 0;
  private limited = 0;

  constructor(opts: MemoryRateLimiterOptions = {}) {
    this.windows = new KeySlots(opts.maxKeys, (slot) => this.slots.release(slot));
  }

  consume(keyId: string, limit: number, nowMs: number): RateDecision {
    checkLimit(limit);
    const now = Math.floor(nowMs);
    this.sweep(now);
    const slots = this.slots;
    let i = this.windows.get(keyId);
    if (i === undefined) {
      this.windows.makeRoom();
      i = slots.alloc(windowStartOf(now));
      this.windows.add(keyId, i);
    } else if (slots.roll(i, now)) {
      this.windows.moved(keyId, i);
    }
    const prev = slots.prev[i]!;
    let curr = slots.curr[i]!;
    const elapsed = Math.max(0, now - slots.start[i]!);
    const ok = admits(limit, prev, curr, elapsed);
    if (ok) {
      slots.curr[i] = ++curr;
      this.allowed++;
    } else {
      this.limited++;
    }
    return decision(ok, limit, prev, curr, elapsed);
  }

  refund(keyId: string, nowMs: number): void {
    const i = this.windows.get(keyId);
    if (i !== undefined && this.slots.start[i] === windowStartOf(Math.floor(nowMs)) && this.slots.curr[i]! > 0) this.slots.curr[i]!--;
  }

  peek(keyId: string, limit: number, nowMs: number): Promise<RateDecision> {
    // A bad limit rejects (as the Redis limiter's peek does) rather than throwing.
    return new Promise((resolve) => resolve(this.peekNow(keyId, limit, nowMs)));
  }

  private peekNow(keyId: string, limit: number, nowMs: number): RateDecision {
    checkLimit(limit);
    const now = Math.floor(nowMs);
    this.sweep(now);
    const i = this.windows.get(keyId);
    const v: Window =
      i !== undefined
        ? { windowStart: this.slots.start[i]!, prev: this.slots.prev[i]!, curr: this.slots.curr[i]! }
        : { windowStart: windowStartOf(now), prev: 0, curr: 0 };
    roll(v, now);
    const elapsed = Math.max(0, now - v.windowStart);
    return decision(admits(limit, v.prev, v.curr, elapsed), limit, v.prev, v.curr, elapsed);
  }

  reset(keyId: string): Promise<void> {
    this.windows.delete(keyId);
    return Promise.resolve();
  }

  /** Drops up to `max` of the keys at the front (oldest windows) if idle for 2 windows or more. */
  sweep(nowMs: number, max = SWEEP_PER_CALL): void {
    this.windows.sweep(this.slots.start, windowStartOf(nowMs), IDLE_MS, max);
  }

  stats(): RateLimiterStats {
    return {
      backend: 'memory',
      trackedKeys: this.windows.size,
      allowed: this.allowed,
      limited: this.limited,
      redisErrors: 0,
      fallbackDecisions: 0,
    };
  }

  close(): Promise<void> {
    this.windows.clear();
    this.slots.clear();
    return Promise.resolve();
  }
}

/** Moves a key's counts into the window containing `now` (never back into an earlier one). */
function roll(w: Window, now: number): void {
  const ws = windowStartOf(now);
  if (ws <= w.windowStart) return;
  w.prev = ws - w.windowStart === WINDOW_MS ? w.curr : 0;
  w.curr = 0;
  w.windowStart = ws;
}
