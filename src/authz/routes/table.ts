/** RouteTable: validated rules compiled once (globs to RegExps) and matched first-wins per request. */
import type { ScopeRequirement } from '../scopes';
import { normalizePath } from './normalize';

/** The result of a successful {@link RouteTable.match}. */
export interface RouteMatch {
  /** The rule's `name`, or `rule N` (1-based position in the file) when it has none. */
  rule: string;
  /** The rule's path text (its `path` glob or `path_prefix`): the endpoint label usage is counted under. */
  template: string;
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

const REGEX_SPECIAL = /[\\^$.*+?()[\]{}|]/;

function compileRule(rule: RouteRule): CompiledRule {
  const result: RouteMatch = Object.freeze({
    rule: rule.name ?? `rule ${rule.index}`,
    template: rule.path ?? rule.pathPrefix ?? '',
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
