/** The route-rules file: its accepted forms, and the one-line errors that name the file, rule and field. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadRouteRules, parseRouteRules, RouteRulesError, RouteTable } from '../src/authz/routes';
import { errorOf, load, ruleFor } from './support/route-rules';

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
