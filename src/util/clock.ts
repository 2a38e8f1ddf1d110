/**
 * The source of time. Everything that decides by time takes a Clock, so tests
 * can move time without sleeping.
 */
export interface Clock {
  now(): Date;
  /** now().getTime() without creating a Date (hot paths); clocks without it are read through now(). */
  nowMs?(): number;
}

/** The clock's time in epoch ms (Clock.nowMs when it has one). */
export function epochMs(clock: Clock): number {
  return clock.nowMs !== undefined ? clock.nowMs() : clock.now().getTime();
}

export const systemClock: Clock = { now: () => new Date(), nowMs: Date.now };

/** A clock that only moves when told to; for tests. */
export class ManualClock implements Clock {
  private ms: number;
  constructor(start: Date | number = Date.UTC(2026, 0, 15, 12, 0, 0)) {
    this.ms = typeof start === 'number' ? start : start.getTime();
  }
  now(): Date {
    return new Date(this.ms);
  }
  nowMs(): number {
    return this.ms;
  }
  advance(ms: number): void {
    this.ms += ms;
  }
  set(to: Date | number): void {
    this.ms = typeof to === 'number' ? to : to.getTime();
  }
}
