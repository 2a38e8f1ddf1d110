/** The batcher's queues: slots in recording order, a FIFO of them, and a merge back into events. */
import type { UsageEvent } from './types';

export interface Slot {
  /** Recording order across both queues. */
  seq: number;
  event: UsageEvent;
}

/** A FIFO with O(1) amortized push and shift. */
export class Fifo {
  private items: (Slot | undefined)[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }
  push(s: Slot): void {
    this.items.push(s);
  }
  shift(): Slot | undefined {
    if (this.head >= this.items.length) return undefined;
    const s = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return s;
  }
  /** The oldest slot's recording order, if any. */
  firstSeq(): number | undefined {
    return this.items[this.head]?.seq;
  }
  /** Puts `older` (oldest first) in front of what is queued. */
  prepend(older: Slot[]): void {
    if (older.length === 0) return;
    this.items = older.concat(this.items.slice(this.head) as Slot[]);
    this.head = 0;
  }
}

/** Merges two seq-ordered slot lists into events in recording order. */
export function merge(a: Slot[], b: Slot[]): UsageEvent[] {
  const out = new Array<UsageEvent>(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = a[i]!.seq < b[j]!.seq ? a[i++]!.event : b[j++]!.event;
  while (i < a.length) out[k++] = a[i++]!.event;
  while (j < b.length) out[k++] = b[j++]!.event;
  return out;
}
