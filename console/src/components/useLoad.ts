/** Loads data for a page; reload() fetches again. An ended session is left to the session handler. */
import { useCallback, useEffect, useState } from 'preact/hooks';
import { sessionEnded, type ApiError } from '../api';
import { toApiError } from './forms';

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | null;
  loading: boolean;
  reload(): void;
}

export function useLoad<T>(fn: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const load = useCallback(fn, deps);
  useEffect(() => {
    let live = true;
    setLoading(true);
    load().then(
      (d) => {
        if (!live) return;
        setData(d);
        setError(null);
        setLoading(false);
      },
      (e) => {
        if (!live) return;
        const err = toApiError(e);
        setData(undefined);
        if (!sessionEnded(err)) setError(err);
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
  }, [load, tick]);
  return { data, error, loading, reload: () => setTick((t) => t + 1) };
}
