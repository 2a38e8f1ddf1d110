/**
 * The route-rules file (KEYWARD_ROUTES_FILE): per request path, which scopes an API
 * key needs, or that the path is public.
 *
 * Envoy can attach per-route `context_extensions` to each check request; Istio cannot.
 * This file covers that gap. It is read and validated once at start; any mistake
 * stops keyward with one line naming the file, the rule and the field.
 *
 * ```yaml
 * # Either a top-level list of rules, or a mapping whose only key is `rules:`.
 * rules:
 *   - name: health                # optional; shown in messages and logs
 *     path: /healthz              # a glob (see below)
 *     methods: [GET, HEAD]        # optional; any method when omitted
 *     public: true                # no API key needed
 *
 *   - name: docs
 *     path_prefix: /docs/         # plain string prefix of the normalized path
 *     public: true
 *
 *   - name: agents-write
 *     path: /v1/agents/**
 *     methods: [POST, PUT, PATCH, DELETE]
 *     hosts: [api.example.com, "*.api.example.com"]
 *     required_scopes: [agents:write]          # all of these…
 *     any_scopes: [org:admin, org:member]      # …and at least one of these
 *
 *   - name: everything-else
 *     path_prefix: /
 *     # neither public nor scopes: any valid key will do
 * ```
 *
 * Rules are tried in order and the first that matches wins; a request that matches
 * none gets no rule from this file. A rule matches when its path, its methods (if
 * given) and its hosts (if given) all match.
 *
 * Fields of a rule (anything else is an error, which catches typos):
 *
 * - `name`: optional, 1..100 printable characters, unique within the file.
 * - exactly one of
 *   - `path_prefix`: starts with `/`; matches every normalized path that starts with
 *     it, as a plain string. So `/v1` also matches `/v1beta` and `/v10`: write `/v1/`
 *     to mean "under /v1" (and add a rule for `/v1` itself if that is a route).
 *   - `path`: a glob that starts with `/` and must match the whole normalized path.
 *     `*` matches any run of characters other than `/` (possibly none), `**` matches
 *     any run of characters including `/` (possibly none), `?` matches one character
 *     other than `/`. Everything else is literal, regular-expression characters
 *     included (`/v1/a.b+c` matches only itself). `/public/**` matches `/public/`
 *     and `/public/x/y` but not `/public`; `/a/**\/b` does not match `/a/b`.
 *   Both must be in normalized form (see {@link normalizePath}): a rule containing
 *   `//`, a `.` or `..` segment, a query, or a percent-escape of an unreserved
 *   character could never match, so it is refused.
 * - `methods`: optional non-empty list of HTTP method names (tokens such as GET,
 *   POST or a custom PURGE), case-insensitive. Requests are matched by their method
 *   upper-cased. HEAD is not implied by GET.
 * - `hosts`: optional non-empty list of host names, compared case-insensitively with
 *   the request's :authority, whose port and trailing dot are ignored. An entry is an
 *   exact name (`api.example.com`), an IPv4 address, a bracketed IPv6 address
 *   (`[::1]`), or `*.example.com`, which matches one or more leading labels
 *   (`a.example.com`, `a.b.example.com`, not `example.com`). Entries carry no port.
 * - `public: true`: the route needs no API key. Cannot be combined with scopes.
 *   `public: false` is the same as leaving it out.
 * - `required_scopes`: optional non-empty list; the key needs every one.
 * - `any_scopes`: optional non-empty list; the key needs at least one.
 *   A scope is 1..128 characters of `A-Z a-z 0-9 _ . : * -`; see ./scopes.ts for
 *   how key scopes (including wildcards) grant them.
 * - A rule with neither `public` nor scopes requires a valid key and nothing more.
 *
 * Paths are compared after {@link normalizePath}, so `/public/../private` cannot
 * reach a `/public/**` rule. keyward does not rewrite what the upstream receives:
 * also enable Envoy's `normalize_path` and `merge_slashes` so that the upstream sees
 * the path that was authorized.
 */
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import type { ScopeRequirement } from './scopes';

/**
 * A problem in the route-rules file. The message is one line, e.g.
 * `KEYWARD_ROUTES_FILE /etc/keyward/routes.yaml: rule 3 (agents): methods: must be a list of HTTP methods`
 * or, for YAML syntax, `KEYWARD_ROUTES_FILE /etc/keyward/routes.yaml: line 4, column 12: …`.
 */
export class RouteRulesError extends Error {
  constructor(
    /** The file (or other source label) given to loadRouteRules / parseRouteRules. */
    readonly source: string,
    /** What is wrong, without the location. */
    readonly problem: string,
    /** Where: the 1-based rule index and its name, the field, or the YAML line. */
    readonly where: { rule?: number; ruleName?: string; field?: string; line?: number; column?: number } = {},
  ) {
    let msg = `KEYWARD_ROUTES_FILE ${source}: `;
    if (where.line !== undefined) msg += `line ${where.line}${where.column !== undefined ? `, column ${where.column}` : ''}: `;
    if (where.rule !== undefined) msg += `rule ${where.rule}${where.ruleName !== undefined ? ` (${where.ruleName})` : ''}: `;
    if (where.field !== undefined) msg += `${where.field}: `;
    super(oneLine(msg + problem));
    this.name = 'RouteRulesError';
  }
}

/** The result of a successful {@link RouteTable.match}. */
export interface RouteMatch {
  /** The rule's `name`, or `rule N` (1-based position in the file) when it has none. */
  rule: string;
  /** True when the route needs no API key (the requirement is then empty). */
  public: boolean;
  /** What the key's scopes must satisfy; both lists empty means any valid key. */
  requirement: ScopeRequirement;
}

/** One validated rule, as read from the file. */
export interface RouteRule {
  /** 1-based position in the file. */
  index: number;
  name?: string;
  /** Exactly one of pathPrefix and path is set. */
  pathPrefix?: string;
  /** The glob source. */
  path?: string;
  /** Upper-case, deduplicated; undefined means any method. */
  methods?: readonly string[];
  /** Lower-case, deduplicated; undefined means any host. */
  hosts?: readonly string[];
  public: boolean;
  requirement: ScopeRequirement;
}

interface CompiledRule {
  prefix: string | undefined;
  glob: RegExp | undefined;
  methods: ReadonlySet<string> | undefined;
  exactHosts: ReadonlySet<string> | undefined;
  /** `.example.com` for `*.example.com`. */
  hostSuffixes: readonly string[] | undefined;
  result: RouteMatch;
}

/** The rules of one file, compiled for matching. Build it with {@link parseRouteRules} or {@link loadRouteRules}. */
export class RouteTable {
  private readonly compiled: readonly CompiledRule[];

  /** Compiles already-validated rules (globs become RegExps here, once). */
  constructor(readonly rules: readonly RouteRule[]) {
    this.compiled = rules.map(compileRule);
  }

  /** A table with no rules: `match` always returns undefined. */
  static empty(): RouteTable {
    return new RouteTable([]);
  }

  /** The number of rules. */
  get size(): number {
    return this.compiled.length;
  }

  /**
   * The first rule matching the request, or undefined.
   *
   * @param method the HTTP method (matched upper-cased)
   * @param host the :authority / Host; a `:port` suffix and a trailing dot are ignored
   * @param path the raw :path, query included; it is normalized with {@link normalizePath}
   *
   * The returned object is shared and frozen; do not modify it.
   */
  match(method: string, host: string, path: string): RouteMatch | undefined {
    const p = normalizePath(path);
    let m: string | undefined;
    let h: string | undefined;
    for (const r of this.compiled) {
      if (r.prefix !== undefined ? !p.startsWith(r.prefix) : !r.glob!.test(p)) continue;
      if (r.methods !== undefined) {
        m ??= method.toUpperCase();
        if (!r.methods.has(m)) continue;
      }
      if (r.exactHosts !== undefined) {
        h ??= requestHost(host);
        if (!r.exactHosts.has(h) && !hasSuffix(h, r.hostSuffixes!)) continue;
      }
      return r.result;
    }
    return undefined;
  }
}

/**
 * Reads and validates a route-rules file (see the module comment for the format).
 * Throws {@link RouteRulesError} when it cannot be read or is invalid.
 */
export function loadRouteRules(file: string): RouteTable {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new RouteRulesError(file, `cannot read the file: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  return parseRouteRules(text, file);
}

/**
 * Parses and validates route rules from YAML text; `source` names the file in
 * messages. Throws {@link RouteRulesError} on YAML syntax errors (with line and
 * column) and on any invalid rule (with rule index, name and field).
 */
export function parseRouteRules(text: string, source: string): RouteTable {
  const doc = parseDocument(text, { uniqueKeys: true });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) {
    const pos = problem.linePos?.[0];
    const reason =
      'code' in problem && problem.code === 'MULTIPLE_DOCS'
        ? 'the file must hold a single YAML document (found a second ---)'
        : problem.message.replace(/ at line \d+, column \d+:[\s\S]*$/, '');
    throw new RouteRulesError(source, `invalid YAML: ${reason}`, { line: pos?.line, column: pos?.col });
  }
  let data: unknown;
  try {
    data = doc.toJS({ mapAsMap: true });
  } catch (e) {
    throw new RouteRulesError(source, `invalid YAML: ${(e as Error).message}`);
  }

  let list: unknown;
  if (Array.isArray(data)) {
    list = data;
  } else if (data instanceof Map) {
    for (const k of data.keys()) {
      if (k !== 'rules') throw new RouteRulesError(source, 'unknown top-level field; the only one is rules', { field: fieldLabel(k) });
    }
    if (!data.has('rules')) throw new RouteRulesError(source, 'expected a list of rules, or a mapping with rules:');
    list = data.get('rules');
    if (!Array.isArray(list)) throw new RouteRulesError(source, 'must be a list of rules', { field: 'rules' });
  } else if (data === null || data === undefined) {
    throw new RouteRulesError(source, 'the file is empty; expected a list of rules, or a mapping with rules: (write "rules: []" for none)');
  } else {
    throw new RouteRulesError(source, 'expected a list of rules, or a mapping with rules:');
  }

  const rules: RouteRule[] = [];
  const names = new Map<string, number>();
  (list as unknown[]).forEach((raw, i) => {
    const rule = validateRule(raw, i + 1, source);
    if (rule.name !== undefined) {
      const first = names.get(rule.name);
      if (first !== undefined) {
        throw new RouteRulesError(source, `duplicate of rule ${first}; names must be unique`, {
          rule: i + 1,
          ruleName: rule.name,
          field: 'name',
        });
      }
      names.set(rule.name, i + 1);
    }
    rules.push(rule);
  });
  return new RouteTable(rules);
}

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

// ---------------------------------------------------------------------------
// Implementation

const MULTI_SLASH = /\/{2,}/g;
const FIELDS = ['name', 'path', 'path_prefix', 'methods', 'hosts', 'public', 'required_scopes', 'any_scopes'] as const;
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const SCOPE = /^[A-Za-z0-9_.:*-]{1,128}$/;
const MAX_SCOPES = 64;
const HOST_NAME = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$/;
const IPV6 = /^\[[0-9a-f:.]+\]$/;
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const REGEX_SPECIAL = /[\\^$.*+?()[\]{}|]/;

function oneLine(s: string): string {
  return s.replace(/[\r\n\u2028\u2029]+/g, ' ');
}

function show(v: unknown): string {
  let s: string;
  if (typeof v === 'string') s = JSON.stringify(v);
  else if (v === null || v === undefined) s = 'nothing';
  else if (Array.isArray(v)) s = 'a list';
  else if (v instanceof Map) s = 'a mapping';
  else if (typeof v === 'object') s = 'a ' + (v.constructor?.name ?? 'value');
  else s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? s.slice(0, 77) + '…' : s;
}

function fieldLabel(k: unknown): string {
  return typeof k === 'string' && /^[A-Za-z0-9_.-]+$/.test(k) ? k : show(k);
}

function validateRule(raw: unknown, index: number, source: string): RouteRule {
  const fail = (field: string | undefined, problem: string, ruleName?: string): never => {
    throw new RouteRulesError(source, problem, { rule: index, ruleName, field });
  };
  if (!(raw instanceof Map)) {
    return fail(undefined, `must be a mapping with path or path_prefix, got ${show(raw)}`);
  }
  const r = raw as Map<unknown, unknown>;

  let name: string | undefined;
  if (r.has('name')) {
    const v = r.get('name');
    if (typeof v !== 'string' || v.trim() === '' || v.length > 100 || CONTROL.test(v)) {
      fail('name', `must be 1..100 printable characters, got ${show(v)}`);
    }
    name = (v as string).trim();
  }
  const at = (field: string, problem: string): never => fail(field, problem, name);

  for (const k of r.keys()) {
    if (typeof k !== 'string' || !(FIELDS as readonly string[]).includes(k)) {
      const hint = typeof k === 'string' ? closest(k) : undefined;
      at(fieldLabel(k), `unknown field${hint ? ` (did you mean ${hint}?)` : ''}; known fields are ${FIELDS.join(', ')}`);
    }
  }

  const hasPath = r.has('path');
  const hasPrefix = r.has('path_prefix');
  if (hasPath && hasPrefix) at('path', 'give either path or path_prefix, not both');
  if (!hasPath && !hasPrefix) at('path', 'missing; every rule needs path (a glob) or path_prefix');
  const field = hasPath ? 'path' : 'path_prefix';
  const pathValue = r.get(field);
  if (typeof pathValue !== 'string' || !pathValue.startsWith('/')) {
    at(field, `must be a string starting with "/", got ${show(pathValue)}`);
  }
  const pv = pathValue as string;
  if (CONTROL.test(pv)) at(field, `must not contain control characters, got ${show(pv)}`);
  // Globs may use '?', which normalizePath would take for a query.
  const asPath = hasPath ? pv.replace(/\?/g, 'Q') : pv;
  const normal = normalizePath(asPath);
  if (normal !== asPath) {
    at(
      field,
      `${show(pv)} is not a normalized path and could never match: requests are matched after ` +
        `normalization (no //, . or .. segments, query, or escaped unreserved characters)` +
        (hasPath ? '' : `; did you mean ${show(normal)}?`),
    );
  }

  let methods: string[] | undefined;
  if (r.has('methods')) {
    const v = r.get('methods');
    if (!Array.isArray(v)) at('methods', `must be a list of HTTP methods, got ${show(v)}`);
    if ((v as unknown[]).length === 0) at('methods', 'must list at least one method; leave it out to match every method');
    methods = [];
    for (const m of v as unknown[]) {
      if (typeof m !== 'string' || !METHOD.test(m)) at('methods', `must be a list of HTTP methods; ${show(m)} is not a method name`);
      const u = (m as string).toUpperCase();
      if (!methods.includes(u)) methods.push(u);
    }
  }

  let hosts: string[] | undefined;
  if (r.has('hosts')) {
    const v = r.get('hosts');
    if (!Array.isArray(v)) at('hosts', `must be a list of host names, got ${show(v)}`);
    if ((v as unknown[]).length === 0) at('hosts', 'must list at least one host; leave it out to match every host');
    hosts = [];
    for (const h of v as unknown[]) {
      const problem = hostProblem(h);
      if (problem !== undefined) at('hosts', problem);
      let s = (h as string).toLowerCase();
      if (s.endsWith('.')) s = s.slice(0, -1);
      if (!hosts.includes(s)) hosts.push(s);
    }
  }

  let isPublic = false;
  if (r.has('public')) {
    const v = r.get('public');
    if (typeof v !== 'boolean') at('public', `must be true or false, got ${show(v)}`);
    isPublic = v as boolean;
  }

  const all = scopeList(r, 'required_scopes', at);
  const any = scopeList(r, 'any_scopes', at);
  if (isPublic && (all !== undefined || any !== undefined)) {
    at('public', `cannot be combined with ${all !== undefined ? 'required_scopes' : 'any_scopes'}: a public route needs no key`);
  }

  return {
    index,
    ...(name !== undefined && { name }),
    ...(hasPath ? { path: pv } : { pathPrefix: pv }),
    ...(methods !== undefined && { methods }),
    ...(hosts !== undefined && { hosts }),
    public: isPublic,
    requirement: { all: all ?? [], any: any ?? [] },
  };
}

function scopeList(r: Map<unknown, unknown>, field: string, at: (field: string, problem: string) => never): string[] | undefined {
  if (!r.has(field)) return undefined;
  const v = r.get(field);
  if (!Array.isArray(v)) at(field, `must be a list of scopes, got ${show(v)}`);
  const list = v as unknown[];
  if (list.length === 0) at(field, 'must list at least one scope; leave it out to require only a valid key');
  if (list.length > MAX_SCOPES) at(field, `at most ${MAX_SCOPES} scopes`);
  const out: string[] = [];
  for (const s of list) {
    if (typeof s !== 'string' || !SCOPE.test(s)) {
      at(field, `${show(s)} is not a valid scope: each is 1..128 characters of A-Z a-z 0-9 _ . : * -`);
    }
    if (!out.includes(s as string)) out.push(s as string);
  }
  return out;
}

function hostProblem(h: unknown): string | undefined {
  if (typeof h !== 'string' || h === '') return `must be a list of host names; ${show(h)} is not a host name`;
  let s = h.toLowerCase();
  if (IPV6.test(s)) return undefined;
  if (s.endsWith('.')) s = s.slice(0, -1);
  if (s === '*') return `"*" matches every host; leave hosts out instead`;
  if (s.startsWith('*.')) s = s.slice(2);
  if (HOST_NAME.test(s)) return undefined;
  if (s.includes('*')) return `${show(h)}: a wildcard must be the whole first label, as in "*.example.com"`;
  const colons = s.split(':').length - 1;
  if (/^\[.*\]:\d*$/.test(s) || (colons === 1 && !s.includes('['))) {
    return `${show(h)}: ports are ignored when matching hosts; leave the port out`;
  }
  if (colons > 1 && !s.includes('[')) return `${show(h)}: write IPv6 addresses in brackets, as in "[::1]"`;
  return `${show(h)} is not a host name, "*.domain" wildcard or IP address`;
}

function closest(k: string): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const f of FIELDS) {
    const d = editDistance(k.toLowerCase(), f);
    if (d < bestD) [best, bestD] = [f, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

function compileRule(rule: RouteRule): CompiledRule {
  const result: RouteMatch = Object.freeze({
    rule: rule.name ?? `rule ${rule.index}`,
    public: rule.public,
    requirement: Object.freeze({
      all: Object.freeze([...rule.requirement.all]) as string[],
      any: Object.freeze([...rule.requirement.any]) as string[],
    }),
  });
  let exactHosts: Set<string> | undefined;
  let hostSuffixes: string[] | undefined;
  if (rule.hosts !== undefined) {
    exactHosts = new Set();
    hostSuffixes = [];
    for (const h of rule.hosts) {
      if (h.startsWith('*.')) hostSuffixes.push(h.slice(1));
      else exactHosts.add(h);
    }
  }
  return {
    prefix: rule.pathPrefix,
    glob: rule.path !== undefined ? globToRegExp(rule.path) : undefined,
    methods: rule.methods !== undefined ? new Set(rule.methods) : undefined,
    exactHosts,
    hostSuffixes,
    result,
  };
}

function globToRegExp(glob: string): RegExp {
  let src = '^';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        src += '.*';
        while (glob[i + 1] === '*') i++;
      } else {
        src += '[^/]*';
      }
    } else if (c === '?') {
      src += '[^/]';
    } else {
      src += REGEX_SPECIAL.test(c) ? '\\' + c : c;
    }
  }
  return new RegExp(src + '$', 's');
}

function hasSuffix(host: string, suffixes: readonly string[]): boolean {
  for (const s of suffixes) {
    if (host.length > s.length && host.endsWith(s)) return true;
  }
  return false;
}

/** The host part of an :authority, lower-cased, without port or trailing dot. */
function requestHost(authority: string): string {
  let h = authority;
  if (h.charCodeAt(0) === 0x5b /* [ */) {
    const close = h.indexOf(']');
    if (close > 0) h = h.slice(0, close + 1);
  } else {
    const colon = h.indexOf(':');
    if (colon >= 0) h = h.indexOf(':', colon + 1) < 0 ? h.slice(0, colon) : `[${h}]`;
  }
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h.toLowerCase();
}

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
