/**
 * The "value or promise" helpers the Check is built on: a plain value stays synchronous
 * (no promise is created), a promise is chained, and errors reach onError as Promise.then
 * would pass them.
 */
import { attempt, then } from '../src/util/maybe-async';

describe('then', () => {
  it('calls onValue now for a plain value and returns its result as is', () => {
    const out = then(2, (v) => v * 3);
    expect(out).toBe(6);
  });

  it('chains a promise and passes its rejection to onError', async () => {
    const ok = then(Promise.resolve(2), (v) => v * 3);
    expect(ok).toBeInstanceOf(Promise);
    expect(await ok).toBe(6);
    expect(
      await then(
        Promise.reject(new Error('down')),
        () => 'value',
        (e) => `error: ${(e as Error).message}`,
      ),
    ).toBe('error: down');
  });

  it('lets a throw from onValue propagate, not reach onError (as Promise.then)', async () => {
    const onError = jest.fn(() => 'caught');
    const fails = () => {
      throw new Error('in onValue');
    };
    expect(() => then(1, fails, onError)).toThrow('in onValue');
    await expect(then(Promise.resolve(1), fails, onError)).rejects.toThrow('in onValue');
    expect(onError).not.toHaveBeenCalled();
  });
});

describe('attempt', () => {
  it('passes a synchronous throw of produce() to onError, synchronously', () => {
    const out = attempt(
      () => {
        throw new Error('sync');
      },
      () => 'value',
      (e) => `error: ${(e as Error).message}`,
    );
    expect(out).toBe('error: sync');
  });

  it('is synchronous for a plain value and asynchronous for a promise', async () => {
    expect(
      attempt(
        () => 1,
        (v) => v + 1,
        () => 0,
      ),
    ).toBe(2);
    const later = attempt(
      () => Promise.reject(new Error('later')),
      () => 'value',
      (e) => `error: ${(e as Error).message}`,
    );
    expect(later).toBeInstanceOf(Promise);
    expect(await later).toBe('error: later');
  });
});
