/** Validation of one rule of the route-rules file (every field, with typo hints). */
import { RouteRulesError } from './errors';
import { normalizePath } from './normalize';
import type { RouteRule } from './table';

const FIELDS = ['name', 'path', 'path_prefix', 'methods', 'hosts', 'public', 'required_scopes', 'any_scopes'] as const;
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const SCOPE = /^[A-Za-z0-9_.:*-]{1,128}$/;
const MAX_SCOPES = 64;
const HOST_NAME = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$/;
const IPV6 = /^\[[0-9a-f:.]+\]$/;
// eslint-disable-next-line no-control-regex -- control characters are what it detects
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

export function show(v: unknown): string {
  let s: string;
  if (typeof v === 'string') s = JSON.stringify(v);
  else if (v === null || v === undefined) s = 'nothing';
  else if (Array.isArray(v)) s = 'a list';
  else if (v instanceof Map) s = 'a mapping';
  else if (typeof v === 'object') s = 'a ' + (v.constructor?.name ?? 'value');
  else s = JSON.stringify(v) ?? (typeof v === 'symbol' || typeof v === 'function' ? v.toString() : 'a value');
  return s.length > 80 ? s.slice(0, 77) + '…' : s;
}

export function fieldLabel(k: unknown): string {
  return typeof k === 'string' && /^[A-Za-z0-9_.-]+$/.test(k) ? k : show(k);
}

export function validateRule(raw: unknown, index: number, source: string): RouteRule {
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
    if (!out.includes(s)) out.push(s);
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
