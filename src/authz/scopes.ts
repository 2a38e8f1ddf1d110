/**
 * Scope matching: does an API key's scope list satisfy what a route requires?
 *
 * A key holds scopes such as `chat`, `agents:read`, `agents:*` or `*`. Only two
 * forms are wildcards:
 *
 * - `*` on its own grants every scope;
 * - a scope ending in `:*` grants every scope that starts with everything before the
 *   `*` (the colon included): `agents:*` grants `agents:read`, `agents:read:x` and the
 *   literal `agents:*`, but not `agents` and not `agentsx:read`.
 *
 * A `*` anywhere else (`a*b`, `agents*`, `*:read`) is an ordinary character that
 * only matches itself. Matching is case-sensitive.
 *
 * These functions run on every request: they compile nothing, and `scopeGrants`
 * allocates nothing. `missingScopes` allocates only when it reports a denial.
 */

/**
 * What a route requires of a key.
 *
 * - `all`: every one of these scopes must be granted;
 * - `any`: when non-empty, at least one of these must be granted as well.
 *
 * Both empty means "any valid key".
 */
export interface ScopeRequirement {
  all: string[];
  any: string[];
}

/** What a key lacks; `missingScopes` returns this only on a denial. */
export interface MissingScopes {
  /** The scopes of `all` that no key scope grants, in requirement order. */
  missing: string[];
  /** The whole `any` list when none of it is granted; otherwise empty. */
  anyOf: string[];
}

const STAR = 0x2a; // '*'
const COLON = 0x3a; // ':'

/**
 * Whether one key scope grants one required scope: `keyScope === required`, or
 * `keyScope` is `*`, or `keyScope` ends in `:*` and `required` starts with
 * `keyScope` minus its final `*`.
 */
export function scopeGrants(keyScope: string, required: string): boolean {
  if (keyScope === required) return true;
  const n = keyScope.length;
  if (n === 0 || keyScope.charCodeAt(n - 1) !== STAR) return false;
  if (n === 1) return true;
  if (keyScope.charCodeAt(n - 2) !== COLON) return false;
  const prefixLength = n - 1;
  if (required.length < prefixLength) return false;
  for (let i = 0; i < prefixLength; i++) {
    if (keyScope.charCodeAt(i) !== required.charCodeAt(i)) return false;
  }
  return true;
}

function granted(keyScopes: readonly string[], required: string): boolean {
  for (let i = 0; i < keyScopes.length; i++) {
    if (scopeGrants(keyScopes[i]!, required)) return true;
  }
  return false;
}

/**
 * Checks a key's scopes against a requirement.
 *
 * Returns `null` when the key may proceed: every scope in `req.all` is granted by
 * some key scope, and `req.any` is empty or at least one of its scopes is granted.
 * Otherwise returns what is lacking (see {@link MissingScopes}); at least one of
 * its two lists is then non-empty. The returned arrays are fresh copies.
 */
export function missingScopes(keyScopes: readonly string[], req: ScopeRequirement): MissingScopes | null {
  let missing: string[] | undefined;
  for (const s of req.all) {
    if (!granted(keyScopes, s)) (missing ??= []).push(s);
  }
  let anyOk = req.any.length === 0;
  for (let i = 0; !anyOk && i < req.any.length; i++) anyOk = granted(keyScopes, req.any[i]!);
  if (missing === undefined && anyOk) return null;
  return { missing: missing ?? [], anyOf: anyOk ? [] : req.any.slice() };
}

/**
 * Parses a comma-separated scope list, as found in an Envoy `context_extensions`
 * value: `"chat, agents:read,,chat"` → `["chat", "agents:read"]`. Items are trimmed,
 * empty items dropped, duplicates removed (first occurrence kept). No validation of
 * the characters is done here.
 */
export function parseScopeList(text: string): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const part of text.split(',')) {
    const s = part.trim();
    if (s === '' || seen.has(s)) continue;
    seen.add(s);
    out.push(s);
  }
  return out;
}
