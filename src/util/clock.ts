/**
 * The source of time. Everything that decides by time takes a Clock, so tests
 * can move time without sleeping.
 */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** A clock that only moves when told to; for tests. */
export class ManualClock implements Clock {
  private nowMs: number;
  constructor(start: Date | number = Date.UTC(2026, 0, 15, 12, 0, 0)) {
    this.nowMs = typeof start === 'number' ? start : start.getTime();
  }
  now(): Date {
    return new Date(this.nowMs);
  }
  advance(ms: number): void {
    this.nowMs += ms;
  }
  set(to: Date | number): void {
    this.nowMs = typeof to === 'number' ? to : to.getTime();
  }
}
