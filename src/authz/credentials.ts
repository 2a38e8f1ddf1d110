/**
 * Finding the API key in a request's headers.
 *
 * Contract:
 *  - Headers come from HttpRequest.headers (names lower-case, duplicates joined with
 *    ",") or, when Envoy sends raw headers, from header_map (duplicates kept apart,
 *    values in raw_value). Names are compared case-insensitively.
 *  - `authorization` yields a credential only as `Bearer <value>` (scheme
 *    case-insensitive; the value is everything after it, trimmed, so a malformed
 *    bearer value is still a credential and is denied, never forwarded); another
 *    scheme (Basic, …) is left alone and is not a credential. Any other configured
 *    header (default `x-api-key`) yields its trimmed value.
 *  - Header names are lower-cased in ASCII only (HTTP names are ASCII).
 *  - The same key given in several places is one credential. Two different values
 *    are `ambiguous` and are never tried one by one.
 *  - `headers` lists the header names that carried the credential, each once, for
 *    removal before the request goes upstream. Read-only: a one-name list is shared.
 */
export type CredentialResult =
  { kind: 'missing' } | { kind: 'ambiguous'; headers: string[] } | { kind: 'found'; key: string; headers: string[] };

/** A request's headers as name (lower-case) → values, in arrival order. */
export type HeaderList = ReadonlyArray<readonly [string, string]>;

/** `Bearer <value>` (scheme in any case, then a space or tab): the value, trimmed; else undefined. */
function bearerValue(s: string): string | undefined {
  if (s.length < 7) return undefined;
  const sep = s.charCodeAt(6);
  if (sep !== 32 && sep !== 9) return undefined;
  for (let i = 0; i < 6; i++) if ((s.charCodeAt(i) | 32) !== BEARER.charCodeAt(i)) return undefined;
  return s.slice(7).trim();
}
const BEARER = 'bearer';

/** Lower-cases A-Z only. */
export function asciiLower(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) return s.replace(/[A-Z]/g, (u) => String.fromCharCode(u.charCodeAt(0) + 32));
  }
  return s;
}

/** Per header name, a frozen one-name list: the usual `headers` of a credential, shared (bounded by the configured names). */
const SINGLE_NAME = new Map<string, string[]>();
function singleName(name: string): string[] {
  let list = SINGLE_NAME.get(name);
  if (list === undefined) {
    list = Object.freeze([name]) as string[];
    SINGLE_NAME.set(name, list);
  }
  return list;
}

/** A headers map (HttpRequest.headers) as a header list, names lower-cased, in the map's order. */
export function headersOfMap(map: Readonly<Record<string, string>>): HeaderList {
  const list: [string, string][] = [];
  for (const k of Object.keys(map)) list.push([asciiLower(k), map[k]!]);
  return list;
}

/** Extracts the credential; `names` are the configured header names, lower-case. */
export function extractCredential(headers: HeaderList, names: readonly string[]): CredentialResult {
  let key: string | undefined;
  let ambiguous = false;
  // The names that carried it: `first`, and `from` only once there is a second one.
  let first: string | undefined;
  let from: string[] | undefined;
  for (let h = 0; h < headers.length; h++) {
    const name = asciiLower(headers[h]![0]);
    if (!names.includes(name)) continue;
    const rawValue = headers[h]![1];
    // Joined duplicates ("a, b") are separate values; a key never holds a comma.
    for (let start = 0; start <= rawValue.length;) {
      let comma = rawValue.indexOf(',', start);
      if (comma < 0) comma = rawValue.length;
      const part = start === 0 && comma === rawValue.length ? rawValue : rawValue.slice(start, comma);
      start = comma + 1;
      let value: string;
      if (name === 'authorization') {
        const bearer = bearerValue(part.trim());
        if (bearer === undefined) continue;
        value = bearer;
      } else value = part.trim();
      if (value === '') continue;
      if (first === undefined) first = name;
      else if (name !== first && !(from ??= [first]).includes(name)) from.push(name);
      if (key === undefined) key = value;
      else if (key !== value) ambiguous = true;
    }
  }
  if (key === undefined) return { kind: 'missing' };
  const carried = from ?? singleName(first!);
  if (ambiguous) return { kind: 'ambiguous', headers: carried };
  return { kind: 'found', key, headers: carried };
}
