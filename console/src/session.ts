/** The signed-in session as the page knows it, and a hook to follow it. */
import { useEffect, useState } from 'preact/hooks';
import { setCsrfToken, setUnauthorizedHandler } from './api';
import type { Session } from './types';

export interface SessionState {
  /** undefined: not known yet (the first GET /api/session is under way). */
  session: Session | null | undefined;
  /** Shown on the sign-in page, e.g. after the session expired. */
  notice: string | null;
}

let state: SessionState = { session: undefined, notice: null };
const listeners = new Set<(s: SessionState) => void>();

function set(next: SessionState): void {
  state = next;
  setCsrfToken(next.session ? next.session.csrfToken : null);
  for (const l of listeners) l(state);
}

export function sessionState(): SessionState {
  return state;
}

export function signedIn(session: Session): void {
  set({ session, notice: null });
}

export function signedOut(notice: string | null = null): void {
  set({ session: null, notice });
}

setUnauthorizedHandler(() => {
  if (state.session) signedOut('Your session has expired. Please sign in again.');
});

export function useSession(): SessionState {
  const [s, setS] = useState(state);
  useEffect(() => {
    listeners.add(setS);
    setS(state);
    return () => {
      listeners.delete(setS);
    };
  }, []);
  return s;
}
