/**
 * KEYWARD_HEAP_GROWING_PERCENT applies only while the heap is large: the cap is set
 * when the used heap passes the threshold, lifted (0 = V8's heuristics) when it falls
 * back, never touched with percent 0; the check runs on its interval (fake timers).
 */
import { capHeapGrowth } from '../src/util/heap';

describe('capHeapGrowth', () => {
  afterEach(() => jest.useRealTimers());

  it('sets the cap above the threshold and lifts it below, on each interval', () => {
    jest.useFakeTimers();
    let used = 100;
    const flags: string[] = [];
    const stop = capHeapGrowth({
      percent: 20,
      aboveBytes: 256,
      intervalMs: 5000,
      usedHeapBytes: () => used,
      setFlags: (f) => flags.push(f),
    });
    expect(flags).toEqual([]);
    used = 300;
    jest.advanceTimersByTime(4999);
    expect(flags).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(flags).toEqual(['--heap-growing-percent=20']);
    jest.advanceTimersByTime(5000);
    expect(flags).toHaveLength(1); // unchanged: not set again
    used = 200;
    jest.advanceTimersByTime(5000);
    expect(flags).toEqual(['--heap-growing-percent=20', '--heap-growing-percent=0']);
    used = 999;
    jest.advanceTimersByTime(5000);
    stop();
    expect(flags).toEqual([
      '--heap-growing-percent=20',
      '--heap-growing-percent=0',
      '--heap-growing-percent=20',
      '--heap-growing-percent=0',
    ]);
    jest.advanceTimersByTime(60_000);
    expect(flags).toHaveLength(4);
  });

  it('does nothing with percent 0', () => {
    jest.useFakeTimers();
    const flags: string[] = [];
    capHeapGrowth({ percent: 0, aboveBytes: 0, usedHeapBytes: () => 1e12, setFlags: (f) => flags.push(f) })();
    jest.advanceTimersByTime(60_000);
    expect(flags).toEqual([]);
  });

  it('applies at once when the heap is already large', () => {
    const flags: string[] = [];
    capHeapGrowth({ percent: 35, aboveBytes: 10, usedHeapBytes: () => 11, setFlags: (f) => flags.push(f) })();
    expect(flags).toEqual(['--heap-growing-percent=35', '--heap-growing-percent=0']);
  });
});
