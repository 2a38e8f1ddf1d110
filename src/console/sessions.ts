/**
 * The web console's sessions, held in the serving process's memory.
 *
 * Contract:
 *  - A session is created by a successful sign-in (src/console/server.ts) and is known
 *    to the browser only by its token: 32 random bytes, base64url, sent in an HttpOnly
 *    cookie. The process keeps the token's SHA-256, never the token.
 *  - Each session has its own CSRF token (32 random bytes), which the page sends back in
 *    `x-csrf-token` on every API call and on sign-out; it is compared in constant time.
 *  - A session ends `idleMs` after its last use, `maxMs` after it began, at sign-out,
 *    or when its `recheck` (the credential still valid: see Authenticator.
 *    authenticateSession) answers false. Ended sessions are forgotten.
 *  - At most `maxSessions` live at once; a new one beyond that ends the oldest.
 *  - Time is the injected clock's. Sessions do not survive a restart, and each replica
 *    has its own: docs/console.md says how to deploy the console.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Principal } from '../admin/principal';
import type { Clock } from '../util/clock';

export interface SessionOptions {
  clock: Clock;
  idleMs: number;
  maxMs: number;
  maxSessions?: number;
}

export interface ConsoleSession {
  principal: Principal;
  csrfToken: string;
  startedAt: number;
  lastUsedAt: number;
  /** Whether the credential signed in with is still valid (a store read). */
  recheck: () => Promise<boolean>;
}

const DEFAULT_MAX_SESSIONS = 10_000;

function digest(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

export class ConsoleSessions {
  private readonly sessions = new Map<string, ConsoleSession>();

  constructor(private readonly options: SessionOptions) {}

  /** A new session; returns its token (for the cookie) and the session. */
  create(principal: Principal, recheck: () => Promise<boolean>): { token: string; session: ConsoleSession } {
    const now = this.options.clock.now().getTime();
    const token = randomBytes(32).toString('base64url');
    const session: ConsoleSession = {
      principal,
      csrfToken: randomBytes(32).toString('base64url'),
      startedAt: now,
      lastUsedAt: now,
      recheck,
    };
    const max = this.options.maxSessions ?? DEFAULT_MAX_SESSIONS;
    while (this.sessions.size >= max) {
      const oldest = this.sessions.keys().next();
      if (oldest.done) break;
      this.sessions.delete(oldest.value);
    }
    this.sessions.set(digest(token), session);
    return { token, session };
  }

  /**
   * The live session of `token`, or undefined (unknown, ended or expired). With `touch`,
   * its idle time starts again.
   */
  get(token: string | undefined, touch = true): ConsoleSession | undefined {
    if (!token) return undefined;
    const id = digest(token);
    const session = this.sessions.get(id);
    if (!session) return undefined;
    const now = this.options.clock.now().getTime();
    if (now >= this.expiresAt(session)) {
      this.sessions.delete(id);
      return undefined;
    }
    if (touch) session.lastUsedAt = now;
    return session;
  }

  /** When `session` ends unless used again, ms since the epoch. */
  expiresAt(session: ConsoleSession): number {
    return Math.min(session.lastUsedAt + this.options.idleMs, session.startedAt + this.options.maxMs);
  }

  end(token: string | undefined): void {
    if (token) this.sessions.delete(digest(token));
  }

  /** Whether `given` is the session's CSRF token. */
  static csrfMatches(session: ConsoleSession, given: string | undefined): boolean {
    if (given === undefined) return false;
    const a = Buffer.from(given);
    const b = Buffer.from(session.csrfToken);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  get size(): number {
    return this.sessions.size;
  }
}
