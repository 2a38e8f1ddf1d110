/**
 * HTTP plumbing of the console: security headers, the session cookie, request bodies,
 * the caller's address, and errors through the one wire mapping (src/errors/codes.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ERROR_TABLE } from '../errors/codes';
import { InvalidArgumentError } from '../errors/domain';
import { toWireStatus } from '../errors/wire';

/**
 * No inline script or style, nothing from another origin, no framing. Scripts may still
 * set element.style (CSSOM), which the chart and the page use.
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** Request bodies larger than this are refused (the largest, RecordUsage of 1000 records, fits). */
export const MAX_BODY_BYTES = 1024 * 1024;

export function securityHeaders(res: ServerResponse, tls: boolean): void {
  res.setHeader('content-security-policy', CONTENT_SECURITY_POLICY);
  res.setHeader('x-content-type-options', 'nosniff');
  res.setHeader('referrer-policy', 'no-referrer');
  res.setHeader('x-frame-options', 'DENY');
  res.setHeader('cross-origin-opener-policy', 'same-origin');
  res.setHeader('cross-origin-resource-policy', 'same-origin');
  if (tls) res.setHeader('strict-transport-security', 'max-age=31536000');
}

/** The session cookie's name: with the `__Host-` prefix under TLS (Secure, no Domain, Path=/). */
export function cookieName(tls: boolean): string {
  return tls ? '__Host-keyward_session' : 'keyward_session';
}

/** Set-Cookie for a session token (or, with an empty token, its removal). */
export function sessionCookie(tls: boolean, token: string, maxAgeSeconds: number): string {
  const parts = [`${cookieName(tls)}=${token}`, 'Path=/', 'HttpOnly', 'SameSite=Strict', `Max-Age=${token ? maxAgeSeconds : 0}`];
  if (tls) parts.push('Secure');
  return parts.join('; ');
}

/** The value of cookie `name` in the request, if exactly one is sent. */
export function readCookie(req: IncomingMessage, name: string): string | undefined {
  const found: string[] = [];
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) found.push(part.slice(eq + 1).trim());
  }
  return found.length === 1 ? found[0] : undefined;
}

/** The request's one value of header `name`. */
export function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' ? value : undefined;
}

/** The caller's address as gRPC writes peers (`ipv4:10.0.0.1:5000`, `ipv6:[::1]:5000`): throttling and audit. */
export function peerOf(req: IncomingMessage): string {
  const { remoteAddress, remotePort, remoteFamily } = req.socket;
  if (!remoteAddress) return 'unknown';
  return remoteFamily === 'IPv6' ? `ipv6:[${remoteAddress}]:${remotePort}` : `ipv4:${remoteAddress}:${remotePort}`;
}

/** The JSON body of a request; invalid_argument (field `content-type` or `body`) when it is not one. */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  const type = (header(req, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new InvalidArgumentError('content-type', 'must be application/json', 'unsupported');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new InvalidArgumentError('body', `is larger than ${MAX_BODY_BYTES} bytes`, 'too_large');
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new InvalidArgumentError('body', 'is not valid JSON', 'not_json');
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, head = false): void {
  const text = body === undefined ? '' : `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
  });
  res.end(head ? undefined : text);
}

/**
 * Answers a thrown error: its code's HTTP status from the error table and
 * `{"error": {code, message, field?, violations?}}`; retry-after when the code has one.
 * Anything not a DomainError is `internal`, without detail. Returns the code.
 */
export function sendError(res: ServerResponse, e: unknown): string {
  const wire = toWireStatus(e);
  const retryAfter = wire.metadata.retry_after_seconds;
  if (retryAfter !== undefined) res.setHeader('retry-after', retryAfter);
  const field = wire.violations[0]?.field;
  sendJson(res, ERROR_TABLE[wire.code].http, {
    error: {
      code: wire.code,
      message: wire.message,
      ...(field !== undefined && { field }),
      ...(wire.violations.length > 0 && { violations: wire.violations }),
    },
  });
  return wire.code;
}
