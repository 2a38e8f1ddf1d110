/**
 * Finding the API key in a request's headers.
 *
 * Contract:
 *  - Headers come from HttpRequest.headers (names lower-case, duplicates joined with
 *    ",") or, when Envoy sends raw headers, from header_map (duplicates kept apart,
 *    values in raw_value). Names are compared case-insensitively.
 *  - `authorization` yields a key only as `Bearer <key>` (scheme case-insensitive);
 *    another scheme (Basic, …) is left alone and is not a credential. Any other
 *    configured header (default `x-api-key`) yields its trimmed value.
 *  - The same key given in several places is one credential. Two different values
 *    are `ambiguous` and are never tried one by one.
 *  - `headers` lists the header names that carried the credential, for removal
 *    before the request goes upstream.
 */
export type CredentialResult =
  | { kind: 'missing' }
  | { kind: 'ambiguous'; headers: string[] }
  | { kind: 'found'; key: string; headers: string[] };

/** A request's headers as name (lower-case) → values, in arrival order. */
export type HeaderList = ReadonlyArray<readonly [string, string]>;

const BEARER = /^[Bb][Ee][Aa][Rr][Ee][Rr][ \t]+([^ \t]+)[ \t]*$/;

/** Extracts the credential; `names` are the configured header names, lower-case. */
export function extractCredential(headers: HeaderList, names: readonly string[]): CredentialResult {
  let key: string | undefined;
  let ambiguous = false;
  const from: string[] = [];
  for (const [rawName, rawValue] of headers) {
    const name = rawName.toLowerCase();
    if (!names.includes(name)) continue;
    // Joined duplicates ("a, b") are separate values; a key never holds a comma.
    for (const part of rawValue.split(',')) {
      let value: string | undefined;
      if (name === 'authorization') {
        const m = BEARER.exec(part.trim());
        if (!m) continue;
        value = m[1];
      } else {
        value = part.trim();
        if (value === '') continue;
      }
      if (value === undefined) continue;
      if (!from.includes(name)) from.push(name);
      if (key === undefined) key = value;
      else if (key !== value) ambiguous = true;
    }
  }
  if (ambiguous) return { kind: 'ambiguous', headers: from };
  if (key === undefined) return { kind: 'missing' };
  return { kind: 'found', key, headers: from };
}
