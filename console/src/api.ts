/**
 * The console's calls to its server (/api/...). The CSRF token lives in this module's
 * variable only: never in localStorage, sessionStorage or a script-readable cookie.
 * A signed-in call answered with missing_credentials or invalid_credentials (the session
 * expired, was ended, or its credential is no longer valid) ends the session in the page
 * (see session.ts). Other 401 codes (key_revoked, key_expired) are errors of the call.
 */
import type { Session } from './types';

export interface Violation {
  field?: string;
  description?: string;
  reason?: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly violations: Violation[] = [],
  ) {
    super(message);
  }
}

/** The codes that mean the session is gone, rather than that one call failed. */
const SESSION_ENDED: readonly string[] = ['missing_credentials', 'invalid_credentials'];

export function sessionEnded(e: unknown): boolean {
  return e instanceof ApiError && e.status === 401 && SESSION_ENDED.includes(e.code);
}

let csrfToken: string | null = null;
let onUnauthorized: (() => void) | null = null;

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** Called when a signed-in call finds the session gone (SESSION_ENDED codes). */
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

async function request(method: string, path: string, body: unknown, signedIn: boolean): Promise<unknown> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (csrfToken !== null && method !== 'GET') headers['x-csrf-token'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network_error', 'The server could not be reached. Check your connection and try again.');
  }
  const text = await res.text();
  let data: unknown = undefined;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = undefined;
    }
  }
  if (res.ok) return data;
  const err = (data as { error?: { code?: string; message?: string; field?: string; violations?: Violation[] } } | undefined)?.error;
  const e = new ApiError(
    res.status,
    err?.code ?? `http_${res.status}`,
    err?.message ?? `The server answered ${res.status}.`,
    err?.field,
    err?.violations ?? [],
  );
  if (sessionEnded(e) && signedIn && onUnauthorized) onUnauthorized();
  throw e;
}

/** The current session, or null when not signed in. */
export async function getSession(): Promise<Session | null> {
  try {
    return (await request('GET', '/api/session', undefined, false)) as Session;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

export async function signIn(credential: string): Promise<Session> {
  return (await request('POST', '/api/session', { credential }, false)) as Session;
}

export async function signOut(): Promise<void> {
  await request('DELETE', '/api/session', undefined, false);
}

/** Calls a KeyAdmin method; the body and the answer are proto3 JSON. */
export async function rpc<T>(method: string, body: object): Promise<T> {
  return ((await request('POST', `/api/rpc/${method}`, body, true)) ?? {}) as T;
}

/** A fresh id for a retry-safe call (AIP-155). */
export function requestId(): string {
  return crypto.randomUUID();
}
