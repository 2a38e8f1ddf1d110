import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { loadRouteRules, normalizePath, parseRouteRules, RouteRulesError, RouteTable } from '../src/authz/routes';

/** Writes the YAML to a fresh temporary file and loads it. */
function load(yaml: string): { table: RouteTable; file: string } {
  const file = join(mkdtempSync(join(tmpdir(), 'keyward-routes-')), 'routes.yaml');
  writeFileSync(file, yaml);
  return { table: loadRouteRules(file), file };
}

function errorOf(yaml: string): { error: RouteRulesError; file: string } {
  const file = join(mkdtempSync(join(tmpdir(), 'keyward-routes-')), 'routes.yaml');
  writeFileSync(file, yaml);
  try {
    loadRouteRules(file);
  } catch (e) {
    if (e instanceof RouteRulesError) return { error: e, file };
    throw e;
  }
  throw new Error('expected a RouteRulesError');
}

/** The name of the matching rule, or undefined. */
function ruleFor(t: RouteTable, path: string, method = 'GET', host = 'api.example.com'): string | undefined {
  return t.match(method, host, path)?.rule;
}

describe('file forms', () => {
  it('accepts a top-level list', () => {
    const { table } = load('- path_prefix: /\n  name: all\n');
    expect(table.size).toBe(1);
    expect(ruleFor(table, '/x')).toBe('all');
  });

  it('accepts a mapping with rules:', () => {
    const { table } = load('rules:\n  - path_prefix: /a/\n  - path_prefix: /b/\n');
    expect(table.size).toBe(2);
    expect(ruleFor(table, '/a/x')).toBe('rule 1');
    expect(ruleFor(table, '/b/x')).toBe('rule 2');
    expect(ruleFor(table, '/c/x')).toBeUndefined();
  });

  it('accepts an empty list of rules', () => {
    expect(load('rules: []\n').table.size).toBe(0);
    expect(load('[]\n').table.size).toBe(0);
  });

  it('has an empty table', () => {
    const t = RouteTable.empty();
    expect(t.size).toBe(0);
    expect(t.match('GET', 'h', '/')).toBeUndefined();
  });
});

describe('matching', () => {
  it('first match wins', () => {
    const { table } = load(`
rules:
  - name: health
    path: /healthz
    public: true
  - name: agents-read
    path_prefix: /v1/agents/
    methods: [GET]
    required_scopes: [agents:read]
  - name: agents-write
    path_prefix: /v1/agents/
    required_scopes: [agents:write]
  - name: catch-all
    path_prefix: /
`);
    expect(table.match('GET', 'h', '/healthz')).toEqual({ rule: 'health', public: true, requirement: { all: [], any: [] } });
    expect(table.match('GET', 'h', '/v1/agents/1')).toEqual({
      rule: 'agents-read',
      public: false,
      requirement: { all: ['agents:read'], any: [] },
    });
    expect(table.match('POST', 'h', '/v1/agents/1')?.rule).toBe('agents-write');
    expect(table.match('POST', 'h', '/other')).toEqual({ rule: 'catch-all', public: false, requirement: { all: [], any: [] } });
  });

  it('prefix is a plain string prefix of the normalized path', () => {
    const { table } = load('- {name: v1, path_prefix: /v1}\n- {name: v2, path_prefix: /v2/}\n');
    expect(ruleFor(table, '/v1')).toBe('v1');
    expect(ruleFor(table, '/v1/x')).toBe('v1');
    expect(ruleFor(table, '/v1beta/x')).toBe('v1'); // documented
    expect(ruleFor(table, '/v2/x')).toBe('v2');
    expect(ruleFor(table, '/v2')).toBeUndefined();
    expect(ruleFor(table, '/v2beta')).toBeUndefined();
    expect(ruleFor(table, '//v2//x?y=1')).toBe('v2');
    expect(ruleFor(table, '/x/../v2/y')).toBe('v2');
  });

  it('glob * matches within one segment', () => {
    const { table } = load('- {name: g, path: "/v1/*/items"}\n');
    expect(ruleFor(table, '/v1/a/items')).toBe('g');
    expect(ruleFor(table, '/v1//items')).toBeUndefined(); // merged to /v1/items
    expect(ruleFor(table, '/v1/a/b/items')).toBeUndefined();
    expect(ruleFor(table, '/v1/a/items/')).toBeUndefined();
    expect(ruleFor(table, '/v1/a/items?x=1')).toBe('g');
  });

  it('glob * may match an empty run', () => {
    const { table } = load('- {name: g, path: "/files/*.txt"}\n');
    expect(ruleFor(table, '/files/.txt')).toBe('g');
    expect(ruleFor(table, '/files/a.txt')).toBe('g');
    expect(ruleFor(table, '/files/a/b.txt')).toBeUndefined();
  });

  it('glob ** matches across segments', () => {
    const { table } = load('- {name: pub, path: "/public/**"}\n- {name: mid, path: "/a/**/z"}\n');
    expect(ruleFor(table, '/public/')).toBe('pub');
    expect(ruleFor(table, '/public/x')).toBe('pub');
    expect(ruleFor(table, '/public/x/y/z.css')).toBe('pub');
    expect(ruleFor(table, '/public')).toBeUndefined();
    expect(ruleFor(table, '/publicity')).toBeUndefined();
    expect(ruleFor(table, '/a/b/c/z')).toBe('mid');
    expect(ruleFor(table, '/a/b/z')).toBe('mid');
    expect(ruleFor(table, '/a/z')).toBeUndefined();
  });

  it('glob ? matches one non-slash character', () => {
    const { table } = load('- {name: q, path: "/v?/x"}\n');
    expect(ruleFor(table, '/v1/x')).toBe('q');
    expect(ruleFor(table, '/v/x')).toBeUndefined();
    expect(ruleFor(table, '/v12/x')).toBeUndefined();
    expect(ruleFor(table, '/v//x')).toBeUndefined();
  });

  it('treats regex metacharacters in globs as literals', () => {
    const { table } = load('- {name: m, path: "/v1/a.b+c"}\n- {name: n, path: "/x/(a|b)[c]{2}^$\\\\"}\n- {name: o, path: "/p/a.*"}\n');
    expect(ruleFor(table, '/v1/a.b+c')).toBe('m');
    expect(ruleFor(table, '/v1/aXb+c')).toBeUndefined();
    expect(ruleFor(table, '/v1/a.bbc')).toBeUndefined();
    expect(ruleFor(table, '/x/(a|b)[c]{2}^$\\')).toBe('n');
    expect(ruleFor(table, '/x/a')).toBeUndefined();
    expect(ruleFor(table, '/p/a.json')).toBe('o');
    expect(ruleFor(table, '/p/ab')).toBeUndefined();
  });

  it('matches percent-encoded slashes only literally', () => {
    const { table } = load('- {name: enc, path: "/files/*"}\n');
    expect(ruleFor(table, '/files/a%2Fb')).toBe('enc');
    expect(ruleFor(table, '/files/a%2fb')).toBe('enc');
    expect(ruleFor(table, '/files/a/b')).toBeUndefined();
  });

  it('matches methods case-insensitively', () => {
    const { table } = load('- {name: w, path_prefix: /, methods: [post, Put, PURGE, POST]}\n');
    expect(table.rules[0]!.methods).toEqual(['POST', 'PUT', 'PURGE']);
    expect(ruleFor(table, '/x', 'POST')).toBe('w');
    expect(ruleFor(table, '/x', 'post')).toBe('w');
    expect(ruleFor(table, '/x', 'PURGE')).toBe('w');
    expect(ruleFor(table, '/x', 'GET')).toBeUndefined();
    expect(ruleFor(table, '/x', 'HEAD')).toBeUndefined();
  });

  it('matches hosts exactly, by wildcard, ignoring ports and case', () => {
    const { table } = load(`
- name: api
  path_prefix: /
  hosts: [API.example.com, "*.svc.example.com", "10.0.0.1", "[::1]", "[2001:DB8::1]", "dot.example.com."]
`);
    const host = (h: string) => table.match('GET', h, '/')?.rule;
    expect(host('api.example.com')).toBe('api');
    expect(host('Api.Example.COM:8443')).toBe('api');
    expect(host('api.example.com.')).toBe('api');
    expect(host('x.api.example.com')).toBeUndefined();
    expect(host('example.com')).toBeUndefined();
    expect(host('a.svc.example.com')).toBe('api');
    expect(host('a.b.svc.example.com:80')).toBe('api');
    expect(host('svc.example.com')).toBeUndefined();
    expect(host('.svc.example.com')).toBeUndefined();
    expect(host('xsvc.example.com')).toBeUndefined();
    expect(host('10.0.0.1:8080')).toBe('api');
    expect(host('10.0.0.2')).toBeUndefined();
    expect(host('[::1]')).toBe('api');
    expect(host('[::1]:8080')).toBe('api');
    expect(host('::1')).toBe('api');
    expect(host('[::2]:8080')).toBeUndefined();
    expect(host('[2001:db8::1]:443')).toBe('api');
    expect(host('dot.example.com')).toBe('api');
    expect(host('')).toBeUndefined();
  });

  it('combines path, method and host, falling through to later rules', () => {
    const { table } = load(`
- {name: a, path_prefix: /x/, methods: [GET], hosts: [a.test]}
- {name: b, path_prefix: /x/}
`);
    expect(table.match('GET', 'a.test', '/x/1')?.rule).toBe('a');
    expect(table.match('POST', 'a.test', '/x/1')?.rule).toBe('b');
    expect(table.match('GET', 'b.test', '/x/1')?.rule).toBe('b');
  });

  it('public rules and scope requirements', () => {
    const { table } = load(`
- {name: pub, path: "/public/**", public: true}
- {name: off, path: /off, public: false, required_scopes: [a]}
- {name: both, path: /both, required_scopes: [a, b, a], any_scopes: ["org:*", x]}
- {name: key, path: /key}
`);
    expect(table.match('GET', 'h', '/public/a')).toEqual({ rule: 'pub', public: true, requirement: { all: [], any: [] } });
    // /public/../private must not reach the public rule.
    expect(table.match('GET', 'h', '/public/../private')).toBeUndefined();
    expect(table.match('GET', 'h', '/public/%2e%2e/key')?.rule).toBe('key');
    expect(table.match('GET', 'h', '/public/.%2E/key')?.rule).toBe('key');
    expect(table.match('GET', 'h', '/off')).toEqual({ rule: 'off', public: false, requirement: { all: ['a'], any: [] } });
    expect(table.match('GET', 'h', '/both')).toEqual({
      rule: 'both',
      public: false,
      requirement: { all: ['a', 'b'], any: ['org:*', 'x'] },
    });
    expect(table.match('GET', 'h', '/key')).toEqual({ rule: 'key', public: false, requirement: { all: [], any: [] } });
  });

  it('returns frozen results', () => {
    const { table } = load('- {path: /a, required_scopes: [s]}\n');
    const m = table.match('GET', 'h', '/a')!;
    expect(Object.isFrozen(m)).toBe(true);
    expect(Object.isFrozen(m.requirement.all)).toBe(true);
  });
});

describe('validation errors', () => {
  /** Asserts one-line message naming the file, rule index, name (when given) and field. */
  function expectError(yaml: string, rule: number, name: string | undefined, field: string, problem?: RegExp): RouteRulesError {
    const { error, file } = errorOf(yaml);
    const where = `KEYWARD_ROUTES_FILE ${file}: rule ${rule}${name !== undefined ? ` (${name})` : ''}: ${field}: `;
    expect(error.message).toContain(where);
    expect(error.message.startsWith(where)).toBe(true);
    expect(error.message).not.toContain('\n');
    expect(error.where).toMatchObject({ rule, field, ...(name !== undefined && { ruleName: name }) });
    if (problem) expect(error.message).toMatch(problem);
    return error;
  }

  it('matches the documented example', () => {
    const { error, file } = errorOf(`
- path: /a
- path: /b
- name: agents
  path: /c
  methods: GET
`);
    expect(error.message).toBe(`KEYWARD_ROUTES_FILE ${file}: rule 3 (agents): methods: must be a list of HTTP methods, got "GET"`);
  });

  it('unknown field, with a suggestion', () => {
    expectError(
      '- name: agents\n  path: /a\n  requried_scopes: [a]\n',
      1,
      'agents',
      'requried_scopes',
      /unknown field \(did you mean required_scopes\?\)/,
    );
    expectError('- {path: /a}\n- {path: /b, prefix: /c}\n', 2, undefined, 'prefix', /unknown field/);
  });

  it('both path and path_prefix', () => {
    expectError('- {name: r, path: /a, path_prefix: /a}\n', 1, 'r', 'path', /not both/);
  });

  it('neither path nor path_prefix', () => {
    expectError('- {name: r, methods: [GET]}\n', 1, 'r', 'path', /path_prefix/);
  });

  it('path not starting with /', () => {
    expectError('- {name: r, path: "a/*"}\n', 1, 'r', 'path', /starting with "\/"/);
    expectError('- {name: r, path_prefix: v1/}\n', 1, 'r', 'path_prefix', /starting with "\/"/);
    expectError('- {name: r, path: 42}\n', 1, 'r', 'path', /got 42/);
  });

  it('paths that could never match after normalization', () => {
    expectError('- {name: r, path_prefix: /a//b}\n', 1, 'r', 'path_prefix', /did you mean "\/a\/b"/);
    expectError('- {name: r, path_prefix: /a/../b}\n', 1, 'r', 'path_prefix', /normalized/);
    expectError('- {name: r, path_prefix: "/a?x=1"}\n', 1, 'r', 'path_prefix', /normalized/);
    expectError('- {name: r, path: "/a/./*"}\n', 1, 'r', 'path', /normalized/);
    expectError('- {name: r, path: "/%7Euser/*"}\n', 1, 'r', 'path', /normalized/);
  });

  it('public with scopes', () => {
    expectError('- {name: r, path: /a, public: true, required_scopes: [a]}\n', 1, 'r', 'public', /required_scopes/);
    expectError('- {name: r, path: /a, public: true, any_scopes: [a]}\n', 1, 'r', 'public', /any_scopes/);
    expectError('- {name: r, path: /a, public: "yes"}\n', 1, 'r', 'public', /true or false/);
  });

  it('bad scopes', () => {
    expectError(
      '- {name: r, path: /a, required_scopes: ["agents read"]}\n',
      1,
      'r',
      'required_scopes',
      /"agents read" is not a valid scope/,
    );
    expectError('- {name: r, path: /a, any_scopes: ["a/b"]}\n', 1, 'r', 'any_scopes', /not a valid scope/);
    expectError(`- {name: r, path: /a, required_scopes: ["${'a'.repeat(129)}"]}\n`, 1, 'r', 'required_scopes', /not a valid scope/);
    expectError('- {name: r, path: /a, required_scopes: chat}\n', 1, 'r', 'required_scopes', /must be a list of scopes/);
    expectError('- {name: r, path: /a, required_scopes: []}\n', 1, 'r', 'required_scopes', /at least one/);
    expectError('- {name: r, path: /a, any_scopes: [1]}\n', 1, 'r', 'any_scopes', /not a valid scope/);
  });

  it('bad methods', () => {
    expectError('- {name: r, path: /a, methods: GET}\n', 1, 'r', 'methods', /must be a list of HTTP methods/);
    expectError('- {name: r, path: /a, methods: ["GE T"]}\n', 1, 'r', 'methods', /"GE T" is not a method name/);
    expectError('- {name: r, path: /a, methods: []}\n', 1, 'r', 'methods', /at least one/);
  });

  it('bad hosts', () => {
    expectError('- {name: r, path: /a, hosts: api.example.com}\n', 1, 'r', 'hosts', /must be a list/);
    expectError('- {name: r, path: /a, hosts: ["api.example.com:443"]}\n', 1, 'r', 'hosts', /leave the port out/);
    expectError('- {name: r, path: /a, hosts: ["[::1]:443"]}\n', 1, 'r', 'hosts', /leave the port out/);
    expectError('- {name: r, path: /a, hosts: ["::1"]}\n', 1, 'r', 'hosts', /brackets/);
    expectError('- {name: r, path: /a, hosts: ["a.*.com"]}\n', 1, 'r', 'hosts', /whole first label/);
    expectError('- {name: r, path: /a, hosts: ["*"]}\n', 1, 'r', 'hosts', /every host/);
    expectError('- {name: r, path: /a, hosts: ["a b"]}\n', 1, 'r', 'hosts', /not a host name/);
  });

  it('bad names', () => {
    expectError('- {name: "", path: /a}\n', 1, undefined, 'name', /printable/);
    expectError('- {name: ["x"], path: /a}\n', 1, undefined, 'name', /printable/);
    expectError('- {name: "a\\nb", path: /a}\n', 1, undefined, 'name', /printable/);
    expectError('- {name: x, path: /a}\n- {name: x, path: /b}\n', 2, 'x', 'name', /duplicate of rule 1/);
  });

  it('a rule that is not a mapping', () => {
    const { error, file } = errorOf('- path: /a\n- just a string\n');
    expect(error.message).toBe(`KEYWARD_ROUTES_FILE ${file}: rule 2: must be a mapping with path or path_prefix, got "just a string"`);
  });

  it('bad top level', () => {
    const f = (yaml: string) => errorOf(yaml).error.message.replace(/^KEYWARD_ROUTES_FILE \S+: /, '');
    expect(f('')).toMatch(/the file is empty/);
    expect(f('# only a comment\n')).toMatch(/the file is empty/);
    expect(f('rules: {path: /a}\n')).toBe('rules: must be a list of rules');
    expect(f('rules:\n')).toBe('rules: must be a list of rules');
    expect(f('rules: []\nrulez: []\n')).toBe('rulez: unknown top-level field; the only one is rules');
    expect(f('{}\n')).toMatch(/expected a list of rules/);
    expect(f('hello\n')).toMatch(/expected a list of rules/);
  });

  it('YAML syntax errors name the line', () => {
    const { error, file } = errorOf('rules:\n  - path: /a\n    methods: [GET\n  - path: /b\n');
    expect(error).toBeInstanceOf(RouteRulesError);
    expect(error.message.startsWith(`KEYWARD_ROUTES_FILE ${file}: line `)).toBe(true);
    expect(error.message).toMatch(/invalid YAML/);
    expect(error.message).not.toContain('\n');
    expect(error.where.line).toBeGreaterThanOrEqual(3);

    const dup = errorOf('- path: /a\n  path: /b\n').error;
    expect(dup.message).toMatch(/: line 2, column 3: invalid YAML: Map keys must be unique$/);
    expect(errorOf('- path: /a\n---\n- path: /b\n').error.message).toMatch(/line 2, .*single YAML document/);
    expect(errorOf('- path: "/a\\q"\n').error.where.line).toBe(1);
    expect(errorOf('- !custom x\n').error.message).toMatch(/line 1, column 3: invalid YAML: Unresolved tag/);
  });

  it('an unreadable file', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'keyward-routes-')), 'missing.yaml');
    expect(() => loadRouteRules(file)).toThrow(new RouteRulesError(file, 'cannot read the file: ENOENT'));
    expect(() => loadRouteRules(file)).toThrow(`KEYWARD_ROUTES_FILE ${file}: cannot read the file: ENOENT`);
  });

  it('parseRouteRules uses the given source in messages', () => {
    expect(() => parseRouteRules('- {path: x}', 'inline')).toThrow('KEYWARD_ROUTES_FILE inline: rule 1: path:');
  });
});

describe('normalizePath', () => {
  it.each<[string, string]>([
    ['/', '/'],
    ['', '/'],
    ['/a/b', '/a/b'],
    ['/a/b/', '/a/b/'],
    ['/public/%2e%2e/private', '/private'],
    ['/public/%2E%2e/private', '/private'],
    ['/public/.%2e/private', '/private'],
    ['/public/..%2Fprivate', '/public/..%2Fprivate'],
    ['//a//b', '/a/b'],
    ['///a///b///', '/a/b/'],
    ['/a/b/..', '/a/'],
    ['/a/b/.', '/a/b/'],
    ['/a/./b/../c', '/a/c'],
    ['/..', '/'],
    ['/../..', '/'],
    ['/../a', '/a'],
    ['/a/..', '/'],
    ['/a/../', '/'],
    ['/a/..//b', '/b'],
    ['/a?b=1', '/a'],
    ['/a?b=/../c', '/a'],
    ['/a#frag', '/a'],
    ['/a#frag?x', '/a'],
    ['/a/..?x', '/'],
    ['/a%2Fb', '/a%2Fb'],
    ['/a%2fb', '/a%2Fb'],
    ['/%41%7a%30%2D%2e%5F%7E', '/Az0-._~'],
    ['/%252e%252e/x', '/%252e%252e/x'],
    ['/%3F', '/%3F'],
    ['/100%', '/100%25'],
    ['/a%zz', '/a%25zz'],
    ['/%%34%31', '/%2541'],
    ['/..a/.b/a..', '/..a/.b/a..'],
    ['/.well-known/x', '/.well-known/x'],
    ['a/b', '/a/b'],
    ['*', '/*'],
  ])('%j → %j', (raw, expected) => {
    expect(normalizePath(raw)).toBe(expected);
  });

  it('returns already-normal paths unchanged (same string)', () => {
    const p = '/v1/agents/123/items';
    expect(normalizePath(p)).toBe(p);
  });

  it('is idempotent and its output is always normal', () => {
    const segment = fc.oneof(
      fc.constantFrom('', '.', '..', '%2e', '%2E', '.%2e', '%2e.', '%2F', '%2f', '%', '%4', '%41', '%25', '%zz', 'a', 'b.c', '~'),
      fc.string({ maxLength: 6 }),
    );
    const path = fc
      .tuple(fc.boolean(), fc.array(segment, { maxLength: 10 }), fc.constantFrom('', '?q=/../x', '#f', '?'))
      .map(([lead, segs, tail]) => (lead ? '/' : '') + segs.join('/') + tail);
    fc.assert(
      fc.property(fc.oneof(path, fc.string({ maxLength: 30 })), (raw) => {
        const once = normalizePath(raw);
        expect(normalizePath(once)).toBe(once);
        expect(once.startsWith('/')).toBe(true);
        expect(once).not.toContain('//');
        expect(once).not.toContain('/./');
        expect(once).not.toContain('/../');
        expect(once.endsWith('/.')).toBe(false);
        expect(once.endsWith('/..')).toBe(false);
        expect(once).not.toMatch(/[?#]/);
      }),
      { numRuns: 2000 },
    );
  });
});
