/** Route matching (path prefix and globs, methods, hosts; first match wins) and path normalization. */
import fc from 'fast-check';
import { normalizePath } from '../src/authz/routes';
import { load, ruleFor } from './support/route-rules';

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
    expect(table.match('GET', 'h', '/healthz')).toEqual({
      rule: 'health',
      template: '/healthz',
      public: true,
      requirement: { all: [], any: [] },
    });
    expect(table.match('GET', 'h', '/v1/agents/1')).toEqual({
      rule: 'agents-read',
      template: '/v1/agents/',
      public: false,
      requirement: { all: ['agents:read'], any: [] },
    });
    expect(table.match('POST', 'h', '/v1/agents/1')?.rule).toBe('agents-write');
    expect(table.match('POST', 'h', '/other')).toEqual({
      rule: 'catch-all',
      template: '/',
      public: false,
      requirement: { all: [], any: [] },
    });
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
    expect(table.match('GET', 'h', '/public/a')).toEqual({
      rule: 'pub',
      template: '/public/**',
      public: true,
      requirement: { all: [], any: [] },
    });
    // /public/../private must not reach the public rule.
    expect(table.match('GET', 'h', '/public/../private')).toBeUndefined();
    expect(table.match('GET', 'h', '/public/%2e%2e/key')?.rule).toBe('key');
    expect(table.match('GET', 'h', '/public/.%2E/key')?.rule).toBe('key');
    expect(table.match('GET', 'h', '/off')).toEqual({ rule: 'off', template: '/off', public: false, requirement: { all: ['a'], any: [] } });
    expect(table.match('GET', 'h', '/both')).toEqual({
      rule: 'both',
      template: '/both',
      public: false,
      requirement: { all: ['a', 'b'], any: ['org:*', 'x'] },
    });
    expect(table.match('GET', 'h', '/key')).toEqual({ rule: 'key', template: '/key', public: false, requirement: { all: [], any: [] } });
  });

  it('returns frozen results', () => {
    const { table } = load('- {path: /a, required_scopes: [s]}\n');
    const m = table.match('GET', 'h', '/a')!;
    expect(Object.isFrozen(m)).toBe(true);
    expect(Object.isFrozen(m.requirement.all)).toBe(true);
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
