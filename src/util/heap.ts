/**
 * Keeps the resident size of a large heap close to its live data.
 *
 * V8 lets a busy process grow its heap to several times the live data before a full
 * collection (1,000,000 cached keys: ~400 MB live, over 1.3 GB resident). V8's
 * --heap-growing-percent caps that growth, at the price of more frequent full
 * collections, which on a small heap (the usual hot path) cost real throughput. So
 * the cap applies only while the heap is large: every few seconds the used heap is
 * compared with `aboveBytes`, and the flag is set to `percent` above it and back to
 * 0 (V8's own heuristics) below. V8 reads the flag at each heap-limit decision.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';

export interface HeapCapOptions {
  /** Growth past the live size, in percent (KEYWARD_HEAP_GROWING_PERCENT); 0 disables. */
  percent: number;
  /** Used heap above which the cap applies. */
  aboveBytes: number;
  /** How often to look (default 5 s). */
  intervalMs?: number;
  /** For tests: where the used heap size and the flag setter come from. */
  usedHeapBytes?: () => number;
  setFlags?: (flags: string) => void;
}

/** Starts watching; returns a stop function. The timer does not keep the process alive. */
export function capHeapGrowth(opts: HeapCapOptions): () => void {
  if (opts.percent <= 0) return () => undefined;
  const used = opts.usedHeapBytes ?? (() => getHeapStatistics().used_heap_size);
  const set = opts.setFlags ?? setFlagsFromString;
  let applied = 0;
  const adjust = () => {
    const want = used() > opts.aboveBytes ? opts.percent : 0;
    if (want === applied) return;
    set(`--heap-growing-percent=${want}`);
    applied = want;
  };
  adjust();
  const timer = setInterval(adjust, opts.intervalMs ?? 5000);
  timer.unref();
  return () => {
    clearInterval(timer);
    if (applied !== 0) set('--heap-growing-percent=0');
    applied = 0;
  };
}
