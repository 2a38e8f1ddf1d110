/**
 * A value now or later. The Check is synchronous when every step answers from memory
 * (a cached key, the in-memory limiter and quota), so the hot path creates no promise;
 * these helpers chain such steps without an `instanceof Promise` at each one.
 */
export type MaybePromise<T> = T | Promise<T>;

/**
 * onValue(value): now when `value` is plain, once it resolves when it is a promise;
 * onError receives its rejection (without onError the rejection propagates). As with
 * Promise.then, a throw from onValue is not passed to onError: it propagates (thrown
 * now, or as the returned promise's rejection).
 */
export function then<T, R>(
  value: MaybePromise<T>,
  onValue: (value: T) => MaybePromise<R>,
  onError?: (error: unknown) => MaybePromise<R>,
): MaybePromise<R> {
  if (value instanceof Promise) return value.then(onValue, onError);
  return onValue(value);
}

/**
 * then(produce(), onValue, onError), where a synchronous throw from produce() also goes
 * to onError, as its rejection would.
 */
export function attempt<T, R>(
  produce: () => MaybePromise<T>,
  onValue: (value: T) => MaybePromise<R>,
  onError: (error: unknown) => MaybePromise<R>,
): MaybePromise<R> {
  let value: MaybePromise<T>;
  try {
    value = produce();
  } catch (error) {
    return onError(error);
  }
  return then(value, onValue, onError);
}
