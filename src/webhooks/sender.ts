/**
 * One HTTP POST of a delivery. Contract:
 *  - 2xx is success; any other status (3xx included: redirects are never followed) or
 *    no response within timeoutMs is a failure, with a short error code.
 *  - Without allowInsecure, every address is checked before connecting: an IP literal
 *    directly, a name through the lookup the socket itself uses, so the address that
 *    passed the check is the one connected to (no DNS-rebinding window).
 *  - The response body is discarded unread (at most the first bytes arrive).
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { hostOf, isPublicAddress } from './target';

export interface SendResult {
  /** The HTTP status, when a response came. */
  statusCode?: number;
  durationMs: number;
  /** undefined on success. */
  error?: string;
}

export interface SendOptions {
  url: string;
  body: string;
  headers: Record<string, string>;
  timeoutMs: number;
  allowInsecure: boolean;
}

class BlockedAddress extends Error {
  readonly code = 'blocked_address';
}

/** dns.lookup, refusing any answer that is not public. */
const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
    if (err) return callback(err, '', 0);
    const list = addresses;
    if (list.length === 0 || list.some((a) => !isPublicAddress(a.address)))
      return callback(new BlockedAddress('the name resolves to a non-public address'), '', 0);
    if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list);
    callback(null, list[0]!.address, list[0]!.family);
  });
};

function errorCode(e: unknown): string {
  if (e instanceof BlockedAddress) return 'blocked_address';
  const code = (e as { code?: unknown } | null)?.code;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'dns_failed';
  if (typeof code === 'string' && (code.startsWith('ERR_TLS') || /CERT|SSL/.test(code))) return 'tls_failed';
  return 'connection_failed';
}

export function send(opts: SendOptions): Promise<SendResult> {
  const started = performance.now();
  const elapsed = () => Math.round((performance.now() - started) * 1000) / 1000;
  return new Promise((resolve) => {
    let settled = false;
    const done = (r: Omit<SendResult, 'durationMs'>) => {
      if (settled) return;
      settled = true;
      resolve({ ...r, durationMs: elapsed() });
    };
    let url: URL;
    try {
      url = new URL(opts.url);
    } catch {
      return done({ error: 'invalid_url' });
    }
    const host = hostOf(url);
    if (!opts.allowInsecure && (url.protocol !== 'https:' || (isIP(host) !== 0 && !isPublicAddress(host))))
      return done({ error: url.protocol !== 'https:' ? 'insecure_url' : 'blocked_address' });
    const client = url.protocol === 'https:' ? https : http;
    const req = client.request(url, {
      method: 'POST',
      headers: { ...opts.headers, 'content-length': String(Buffer.byteLength(opts.body)) },
      agent: false,
      ...(!opts.allowInsecure && { lookup: publicOnlyLookup }),
    });
    const timer = setTimeout(() => {
      done({ error: 'timeout' });
      req.destroy();
    }, opts.timeoutMs);
    timer.unref();
    req.on('response', (res) => {
      clearTimeout(timer);
      const status = res.statusCode ?? 0;
      res.resume();
      res.on('error', () => undefined);
      req.destroy();
      if (status >= 200 && status < 300) done({ statusCode: status });
      else if (status >= 300 && status < 400) done({ statusCode: status, error: 'redirect_not_followed' });
      else done({ statusCode: status, error: `http_${status}` });
    });
    req.on('error', (e) => {
      clearTimeout(timer);
      done({ error: errorCode(e) });
    });
    req.end(opts.body);
  });
}
