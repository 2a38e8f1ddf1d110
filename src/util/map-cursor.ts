/**
 * A place in a Map's insertion order that survives deletions, for structures that
 * evict or sweep from the front (LRU/FIFO/CLOCK over a Map).
 *
 * Why: V8 leaves a deleted Map entry as a hole until the table is rehashed, and a new
 * iterator steps over every hole in front of the first live entry, so calling
 * `map.keys().next()` after many deletions at the front costs O(deletions) each time
 * (about 2 ms with 600,000 holes). A live iterator keeps its place instead.
 *
 * Contract:
 *  - current() is the entry under the cursor: the first live entry at or after its
 *    place, starting from the front; undefined when the map is empty.
 *  - advance() moves past it (the entry stays in the map unless the owner deletes it).
 *  - The owner calls mutated(key) before deleting `key` and before or after inserting
 *    it (so a moved entry is not taken for the current one), and reset() after
 *    map.clear().
 *  - Entries inserted later are reached when the cursor gets to the back; after the
 *    last one it starts again from the front (one pass over the holes per cycle).
 *  - A parked iterator keeps every table the Map outgrew or compacted since it last
 *    moved (V8 frees them as it moves on). So after size/8 + 16 mutations without a
 *    move the cursor lets go of its iterator and starts again from the front: at most
 *    one outgrown table is kept, and the new iterator's pass over the holes costs
 *    O(1) per mutation, amortized.
 */
export class MapCursor<K, V> {
  private it: IterableIterator<[K, V]> | undefined;
  private cur: [K, V] | undefined;
  /** Mutations since the iterator last moved. */
  private ops = 0;

  constructor(private readonly map: Map<K, V>) {}

  current(): [K, V] | undefined {
    if (this.cur) return this.cur;
    if (this.map.size === 0) {
      this.it = undefined;
      return undefined;
    }
    let r = this.it?.next();
    if (!r || r.done) {
      this.it = this.map.entries();
      r = this.it.next();
    }
    this.ops = 0;
    this.cur = r.done ? undefined : r.value;
    return this.cur;
  }

  advance(): void {
    this.cur = undefined;
  }

  mutated(key: K): void {
    if (this.cur !== undefined && this.cur[0] === key) this.cur = undefined;
    if (this.it !== undefined && ++this.ops > (this.map.size >> 3) + 16) this.reset();
  }

  reset(): void {
    this.it = undefined;
    this.cur = undefined;
    this.ops = 0;
  }
}
