import fc from 'fast-check';
import { missingScopes, parseScopeList, scopeGrants, type ScopeRequirement } from '../src/authz/scopes';

describe('scopeGrants', () => {
  it.each<[string, string, boolean]>([
    ['chat', 'chat', true],
    ['chat', 'chat:read', false],
    ['chat', 'Chat', false],
    ['*', 'chat', true],
    ['*', 'agents:read:x', true],
    ['*', '*', true],
    ['agents:*', 'agents:read', true],
    ['agents:*', 'agents:read:x', true],
    ['agents:*', 'agents:*', true],
    ['agents:*', 'agents:', true],
    ['agents:*', 'agents', false],
    ['agents:*', 'agentsx:read', false],
    ['agents:*', 'agents-read', false],
    ['agents:*', 'other:read', false],
    ['agents:read:*', 'agents:read:x', true],
    ['agents:read:*', 'agents:write', false],
    ['agents*', 'agentsx', false],
    ['agents*', 'agents*', true],
    ['a*b', 'axb', false],
    ['*:read', 'agents:read', false],
    [':*', ':x', true],
    ['', 'chat', false],
    ['chat', '', false],
    ['agents:read', 'agents:*', false],
  ])('%j grants %j: %s', (key, required, expected) => {
    expect(scopeGrants(key, required)).toBe(expected);
  });
});

describe('missingScopes', () => {
  const req = (all: string[], any: string[] = []): ScopeRequirement => ({ all, any });

  it.each<[string[], ScopeRequirement, ReturnType<typeof missingScopes>]>([
    [[], req([]), null],
    [['chat'], req([]), null],
    [[], req(['chat']), { missing: ['chat'], anyOf: [] }],
    [['chat'], req(['chat']), null],
    [['chat'], req(['chat', 'agents:read']), { missing: ['agents:read'], anyOf: [] }],
    [['agents:*'], req(['agents:read', 'agents:write']), null],
    [['agents:*'], req(['agents', 'agents:read']), { missing: ['agents'], anyOf: [] }],
    [['*'], req(['x', 'y:z'], ['q']), null],
    [['chat'], req([], ['a', 'b']), { missing: [], anyOf: ['a', 'b'] }],
    [['b'], req([], ['a', 'b']), null],
    [['b'], req(['c'], ['a', 'b']), { missing: ['c'], anyOf: [] }],
    [['x'], req(['c', 'd'], ['a', 'b']), { missing: ['c', 'd'], anyOf: ['a', 'b'] }],
    [['org:*'], req(['chat'], ['org:admin', 'org:member']), { missing: ['chat'], anyOf: [] }],
    [['org:*', 'chat'], req(['chat'], ['org:admin', 'org:member']), null],
  ])('%j against %j', (keyScopes, requirement, expected) => {
    expect(missingScopes(keyScopes, requirement)).toEqual(expected);
  });

  it('returns copies, not the requirement arrays', () => {
    const r = req([], ['a']);
    const out = missingScopes([], r)!;
    out.anyOf.push('z');
    expect(r.any).toEqual(['a']);
  });
});

describe('parseScopeList', () => {
  it.each<[string, string[]]>([
    ['', []],
    [' , ,', []],
    ['chat', ['chat']],
    ['chat, agents:read', ['chat', 'agents:read']],
    ['  b ,a,, b,a , c ', ['b', 'a', 'c']],
    ['agents:*,*', ['agents:*', '*']],
  ])('%j', (text, expected) => {
    expect(parseScopeList(text)).toEqual(expected);
  });
});

describe('properties', () => {
  const scope = fc.stringMatching(/^[A-Za-z0-9_.:*-]{1,20}$/);
  const requirement = fc.record({ all: fc.array(scope, { maxLength: 5 }), any: fc.array(scope, { maxLength: 5 }) });

  it('a key holding * satisfies every requirement', () => {
    fc.assert(
      fc.property(fc.array(scope, { maxLength: 5 }), requirement, (others, r) => {
        expect(missingScopes([...others, '*'], r)).toBeNull();
      }),
    );
  });

  it('is never null when some required scope is granted by no key scope, and reports exactly those', () => {
    fc.assert(
      fc.property(fc.array(scope, { maxLength: 5 }), requirement, (keys, r) => {
        const ungranted = r.all.filter((s) => !keys.some((k) => scopeGrants(k, s)));
        const result = missingScopes(keys, r);
        if (ungranted.length > 0) {
          expect(result).not.toBeNull();
          expect(result!.missing).toEqual(ungranted);
        }
        const anyOk = r.any.length === 0 || r.any.some((s) => keys.some((k) => scopeGrants(k, s)));
        expect(result === null).toBe(ungranted.length === 0 && anyOk);
      }),
    );
  });

  it('k:* grants exactly the scopes that start with "k:"', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z]{1,4}$/), scope, (k, s) => {
        expect(scopeGrants(`${k}:*`, s)).toBe(s.startsWith(`${k}:`));
      }),
    );
  });
});
