/**
 * The keys an in-memory limiter tracks: key → slot (an index into the limiter's typed
 * arrays), in a Map ordered by each key's latest window, oldest at the front, holding at
 * most `maxKeys`. Shared by the approximate and the strict limiter; each owns its arrays
 * and is told to free a slot through `release`.
 */
import { MapCursor } from '../util/map-cursor';

export class KeySlots {
  private readonly slots = new Map<string, number>();
  /** The front of `slots`, kept across deletions (see MapCursor). */
  private readonly front = new MapCursor(this.slots);
  readonly maxKeys: number;

  constructor(
    maxKeys: number | undefined,
    private readonly release: (slot: number) => void,
  ) {
    this.maxKeys = maxKeys ?? 1_000_000;
    if (!Number.isSafeInteger(this.maxKeys) || this.maxKeys < 1) throw new RangeError('maxKeys must be a positive integer');
  }

  get size(): number {
    return this.slots.size;
  }

  get(key: string): number | undefined {
    return this.slots.get(key);
  }

  /** Call before allocating a new key's slot: when full, the front key is dropped (its slot freed first). */
  makeRoom(): void {
    if (this.slots.size < this.maxKeys) return;
    const front = this.front.current();
    if (front !== undefined) this.drop(front[0], front[1]);
  }

  /** Tracks a new key at the back. */
  add(key: string, slot: number): void {
    this.slots.set(key, slot);
    this.front.mutated(key);
  }

  /** A key moved into a newer window: to the back, so the Map stays ordered by window. */
  moved(key: string, slot: number): void {
    this.front.mutated(key);
    this.slots.delete(key);
    this.slots.set(key, slot);
  }

  /** Forgets `key` (if tracked) and frees its slot. */
  delete(key: string): void {
    const slot = this.slots.get(key);
    if (slot !== undefined) this.drop(key, slot);
  }

  /** Drops up to `max` keys at the front whose window (`windows[slot]`) is `idleFor` or more behind `now`. */
  sweep(windows: Float64Array, now: number, idleFor: number, max: number): void {
    for (let n = 0; n < max; n++) {
      const front = this.front.current();
      if (front === undefined || now - windows[front[1]]! < idleFor) return;
      this.drop(front[0], front[1]);
    }
  }

  clear(): void {
    this.slots.clear();
    this.front.reset();
  }

  private drop(key: string, slot: number): void {
    this.front.mutated(key);
    this.slots.delete(key);
    this.release(slot);
  }
}
