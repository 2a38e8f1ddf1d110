/**
 * The web console's server (KEYWARD_CONSOLE_LISTEN, default 127.0.0.1:9194; docs/console.md):
 *
 *   GET  /, /assets/*      the page (./static.ts); other paths outside /api/ get index.html
 *   GET  /api/session      the signed-in session, or 401
 *   POST /api/session      sign in: {"credential": "<admin token or admin-scoped API key>"}
 *   DELETE /api/session    sign out (x-csrf-token)
 *   POST /api/rpc/<Method> one KeyAdmin RPC in proto3 JSON (x-csrf-token; ./api.ts)
 *
 * Contract:
 *  - Signing in is KeyAdmin's authentication (Authenticator): the same throttling per
 *    address and the same audit of failures; a success is audited as `console.sign_in`,
 *    a sign-out as `console.sign_out`.
 *  - The session lives in an HttpOnly, SameSite=Strict cookie (Secure, `__Host-` prefixed,
 *    under TLS). The credential is never sent back and never stored by the page.
 *  - Every POST and DELETE must come from this origin (Origin and Sec-Fetch-Site, when
 *    sent), and every API call and the sign-out must carry the session's CSRF token in
 *    `x-csrf-token`: else 403 csrf_token_invalid. Bodies must be application/json.
 *  - Each request re-checks the signed-in credential (revoked key, replaced token: 401).
 *  - Errors are the error table's codes and HTTP statuses, as JSON; nothing else leaks.
 *  - Every response carries a strict Content-Security-Policy (no inline script).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { AdminService } from '../admin/service';
import type { CallContext } from '../admin/principal';
import { DomainError, InvalidArgumentError, UnauthenticatedError } from '../errors/domain';
import { adminSpanAttributes } from '../grpc/admin/server';
import { serveHttp, type HttpListener } from '../observability/http-server';
import type { Tracing } from '../observability/tracing';
import type { ServerTls } from '../tls/server';
import { describeError } from '../util/logger';
import { consoleApi } from './api';
import { cookieName, header, peerOf, readCookie, readJson, securityHeaders, sendError, sendJson, sessionCookie } from './http';
import { ConsoleSessions, type ConsoleSession } from './sessions';
import { loadConsoleFiles, type StaticFile } from './static';

export interface ConsoleServerOptions {
  admin: AdminService;
  sessions: ConsoleSessions;
  /** A session's cookie lifetime (its maximum age), seconds. */
  sessionMaxSeconds: number;
  logger: Logger;
  /** Serve HTTPS with this certificate set (following its reloads); undefined: plain HTTP. */
  tls?: ServerTls;
  /** Told each API call's outcome (metrics), as KeyAdmin's gRPC calls are. */
  onCall?: (method: string, code: string) => void;
  tracing?: Tracing;
  /** The page's files; default: the built ones (./static.ts). */
  files?: Map<string, StaticFile>;
}

export type ConsoleServer = HttpListener;

class CsrfError extends DomainError {
  constructor() {
    super('csrf_token_invalid');
  }
}

/** The session a request's cookie names, re-checked; missing_credentials / invalid_credentials otherwise. */
async function sessionOf(req: IncomingMessage, o: ConsoleServerOptions, tls: boolean): Promise<{ token: string; session: ConsoleSession }> {
  const token = readCookie(req, cookieName(tls));
  const session = o.sessions.get(token);
  if (!token || !session) throw new UnauthenticatedError('missing_credentials');
  if (!(await session.recheck())) {
    o.sessions.end(token);
    throw new UnauthenticatedError('invalid_credentials');
  }
  return { token, session };
}

/** A POST or DELETE from another site: refused whatever it carries. */
function checkSameOrigin(req: IncomingMessage, tls: boolean): void {
  const site = header(req, 'sec-fetch-site');
  if (site !== undefined && site !== 'same-origin' && site !== 'none') throw new CsrfError();
  const origin = header(req, 'origin');
  if (origin !== undefined && origin !== `${tls ? 'https' : 'http'}://${header(req, 'host') ?? ''}`) throw new CsrfError();
}

function checkCsrf(req: IncomingMessage, session: ConsoleSession): void {
  if (!ConsoleSessions.csrfMatches(session, header(req, 'x-csrf-token'))) throw new CsrfError();
}

function sessionJson(sessions: ConsoleSessions, session: ConsoleSession) {
  const p = session.principal;
  return {
    kind: p.kind,
    ...(p.kind === 'org' && { organizationId: p.organizationId, keyId: p.keyId }),
    csrfToken: session.csrfToken,
    expiresAt: new Date(sessions.expiresAt(session)).toISOString(),
  };
}

export async function startConsole(listen: string, o: ConsoleServerOptions): Promise<ConsoleServer> {
  const tls = o.tls !== undefined;
  const files = o.files ?? loadConsoleFiles();
  const api = consoleApi(o.admin);
  const { logger, sessions, admin } = o;

  async function session(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const peer = peerOf(req);
    if (req.method === 'GET' || req.method === 'HEAD') {
      const { session } = await sessionOf(req, o, tls);
      return sendJson(res, 200, sessionJson(sessions, session), req.method === 'HEAD');
    }
    checkSameOrigin(req, tls);
    if (req.method === 'POST') {
      const body = await readJson(req);
      const credential = (body as { credential?: unknown } | null)?.credential;
      if (typeof credential !== 'string' || credential === '') {
        throw new InvalidArgumentError('credential', 'the administrator token or an API key with the admin scope is required', 'required');
      }
      const { principal, recheck } = await admin.authenticator.authenticateSession(credential, peer);
      const created = sessions.create(principal, recheck);
      const target = principal.kind === 'org' ? { organizationId: principal.organizationId, keyId: principal.keyId } : {};
      await admin.audit.record({ principal, peer }, 'console.sign_in', target);
      res.setHeader('set-cookie', sessionCookie(tls, created.token, o.sessionMaxSeconds));
      return sendJson(res, 200, sessionJson(sessions, created.session));
    }
    if (req.method === 'DELETE') {
      const token = readCookie(req, cookieName(tls));
      const found = sessions.get(token, false);
      if (!found) throw new UnauthenticatedError('missing_credentials');
      checkCsrf(req, found);
      sessions.end(token);
      await admin.audit.record({ principal: found.principal, peer }, 'console.sign_out');
      res.setHeader('set-cookie', sessionCookie(tls, '', 0));
      return sendJson(res, 204, undefined);
    }
    res.setHeader('allow', 'GET, HEAD, POST, DELETE');
    throw new InvalidArgumentError('method', `${req.method ?? ''} is not allowed here`, 'method_not_allowed');
  }

  async function rpc(
    req: IncomingMessage,
    res: ServerResponse,
    name: string,
    seen: { principal?: CallContext['principal'] },
  ): Promise<void> {
    const method = api.method(name);
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      throw new InvalidArgumentError('method', 'KeyAdmin calls are POST', 'method_not_allowed');
    }
    if (!method) throw new InvalidArgumentError('rpc', `no KeyAdmin RPC is named ${JSON.stringify(name.slice(0, 64))}`, 'unknown_rpc');
    checkSameOrigin(req, tls);
    const { session } = await sessionOf(req, o, tls);
    seen.principal = session.principal;
    checkCsrf(req, session);
    const body = await readJson(req);
    const caller: CallContext = { principal: session.principal, peer: peerOf(req) };
    sendJson(res, 200, await api.call(method, caller, body));
  }

  /** One API call: answered, logged, counted and traced like a KeyAdmin RPC. */
  function serveApi(req: IncomingMessage, res: ServerResponse, path: string): void {
    const started = process.hrtime.bigint();
    const name = path.startsWith('/api/rpc/') ? path.slice('/api/rpc/'.length) : undefined;
    const label = name !== undefined ? (api.method(name) ? name : 'unknown') : path === '/api/session' ? 'session' : 'unknown';
    const span = name !== undefined && label !== 'unknown' ? o.tracing?.startAdmin(name) : undefined;
    const seen: { principal?: CallContext['principal'] } = {};
    const run = async () => {
      if (path === '/api/session') return session(req, res);
      if (name === undefined) throw new InvalidArgumentError('path', 'no such console API', 'not_found');
      await rpc(req, res, name, seen);
    };
    const done = (code: string) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (span) {
        const { attributes, fault } = adminSpanAttributes(code, seen.principal, undefined);
        span.end(attributes, fault);
      }
      if (label !== 'session' && label !== 'unknown') o.onCall?.(label, code);
      logger.info({ console: label, code, ms }, 'console call');
    };
    run().then(
      () => done('ok'),
      (e: unknown) => {
        const code = res.headersSent ? 'internal' : sendError(res, e);
        if (code === 'internal') logger.error({ console: label, err: describeError(e) }, 'console call failed');
        if (res.headersSent && !res.writableEnded) res.end();
        done(code);
      },
    );
  }

  function serveFile(req: IncomingMessage, res: ServerResponse, path: string): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      res.writeHead(405, { 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
      return;
    }
    const file = files.get(path) ?? (path.startsWith('/assets/') ? undefined : files.get('/'));
    if (!file) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    res.writeHead(200, {
      'content-type': file.contentType,
      'content-length': file.body.length,
      'cache-control': path.startsWith('/assets/') ? 'no-cache' : 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : file.body);
  }

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    securityHeaders(res, tls);
    let path: string;
    try {
      path = new URL(req.url ?? '/', 'http://console').pathname;
    } catch {
      path = '/';
    }
    if (path === '/api' || path.startsWith('/api/')) serveApi(req, res, path);
    else serveFile(req, res, path);
  };

  return serveHttp(listen, handler, { tls: o.tls, requestTimeoutMs: 30_000 });
}
