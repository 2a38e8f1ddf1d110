/** The app's periodic tasks run on a Scheduler: timers in production, held still in tests. */
import { ManualScheduler, timerScheduler } from '../src/util/scheduler';

describe('ManualScheduler', () => {
  it('runs a task only when told to, every task of that name once, until cancelled', () => {
    const s = new ManualScheduler();
    const ran: string[] = [];
    const stopA = s.every('usage-flush', 5000, () => ran.push('a'));
    s.every('usage-flush', 5000, () => ran.push('b'));
    s.every('readiness', 5000, () => ran.push('r'));
    expect(ran).toEqual([]);
    expect(s.names()).toEqual(['usage-flush', 'usage-flush', 'readiness']);
    expect(s.run('usage-flush')).toBe(2);
    expect(ran).toEqual(['a', 'b']);
    stopA();
    expect(s.run('usage-flush')).toBe(1);
    expect(ran).toEqual(['a', 'b', 'b']);
  });

  it('refuses to run a task that is not scheduled, naming what is', () => {
    const s = new ManualScheduler();
    s.every('readiness', 5000, () => undefined);
    expect(() => s.run('quota-sync')).toThrow('no task named quota-sync is scheduled (scheduled: readiness)');
  });
});

describe('timerScheduler', () => {
  it('keeps no timer holding the process open (the timers are unref()ed)', () => {
    const timeouts = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timeouts();
    const stop = timerScheduler.every('usage-flush', 60_000, () => undefined);
    expect(timeouts()).toBe(before);
    stop();
  });
});
