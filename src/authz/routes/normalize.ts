/** Request-path normalization for route matching (RFC 3986 §6.2.2 plus slash merging). */

/**
 * Normalizes a request path for matching (RFC 3986 §6.2.2, plus slash merging):
 *
 * 1. drops the query (`?…`) and fragment (`#…`);
 * 2. decodes percent-escapes of unreserved characters only (`A-Z a-z 0-9 - . _ ~`),
 *    so `%2e` becomes `.` while `%2F` stays encoded; other escapes are upper-cased
 *    (`%2f` → `%2F`) and a `%` not followed by two hex digits becomes `%25`;
 * 3. prepends `/` if missing, and merges runs of slashes (`//a//b` → `/a/b`);
 * 4. removes dot segments per RFC 3986 §5.2.4 (`/a/./b/../c` → `/a/c`,
 *    `/a/b/..` → `/a/`, `/..` → `/`), keeping a trailing slash.
 *
 * The result always starts with `/`, never contains `//`, `/./` or `/../`, and
 * normalizing it again changes nothing. Already-normal paths are returned as is.
 */
export function normalizePath(rawPath: string): string {
  let p = rawPath;
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c === 0x3f /* ? */ || c === 0x23 /* # */) {
      p = p.slice(0, i);
      break;
    }
  }
  if (isNormal(p)) return p;

  if (p.includes('%')) p = decodeUnreserved(p);
  if (p.charCodeAt(0) !== 0x2f) p = '/' + p;
  p = p.replace(MULTI_SLASH, '/');
  return removeDotSegments(p);
}

const MULTI_SLASH = /\/{2,}/g;

/** True when normalizePath would return p unchanged (p has no query or fragment). */
function isNormal(p: string): boolean {
  if (p.charCodeAt(0) !== 0x2f) return false;
  for (let i = 1; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c === 0x25 /* % */) return false;
    if ((c === 0x2f || c === 0x2e) /* / . */ && p.charCodeAt(i - 1) === 0x2f) return false;
  }
  return true;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

function isUnreserved(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e
  );
}

function decodeUnreserved(p: string): string {
  let out = '';
  let last = 0;
  for (let i = 0; i < p.length; i++) {
    if (p.charCodeAt(i) !== 0x25) continue;
    const hi = i + 2 < p.length ? hexValue(p.charCodeAt(i + 1)) : -1;
    const lo = hi >= 0 ? hexValue(p.charCodeAt(i + 2)) : -1;
    out += p.slice(last, i);
    if (lo < 0) {
      // A lone '%' is escaped so that decoding never forms a new escape (idempotence).
      out += '%25';
      last = i + 1;
      continue;
    }
    const v = hi * 16 + lo;
    out += isUnreserved(v) ? String.fromCharCode(v) : p.slice(i, i + 3).toUpperCase();
    last = i + 3;
    i += 2;
  }
  return out + p.slice(last);
}

/** RFC 3986 §5.2.4 on a path that starts with '/' and has no empty segments but the last. */
function removeDotSegments(p: string): string {
  const segments = p.slice(1).split('/');
  const out: string[] = [];
  let trailingSlash = false;
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    const isLast = i === segments.length - 1;
    if (s === '.' || s === '..') {
      if (s === '..') out.pop();
      if (isLast) trailingSlash = true;
    } else {
      out.push(s);
    }
  }
  if (out.length === 0) return '/';
  return '/' + out.join('/') + (trailingSlash ? '/' : '');
}
