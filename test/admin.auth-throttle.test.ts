/**
 * Brute force on KeyAdmin: after KEYWARD_ADMIN_AUTH_MAX_FAILURES failed
 * authentications from one address within a minute, calls from it are refused with
 * RESOURCE_EXHAUSTED `too_many_auth_failures` (even with a valid token) for the block
 * time, the block is audited once, and it ends on the injected clock. Plus the peer
 * address parsing and the throttle's own bookkeeping.
 */
import { status } from '@grpc/grpc-js';
import { AuthThrottle, peerHost } from '../src/admin/auth-throttle';
import { DIALECTS } from './support/databases';
import { errorOf, startHarness, TEST_ADMIN_TOKEN, type Harness } from './support/harness';

describe.each(DIALECTS)('KeyAdmin authentication throttling on %s', (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dialect, { adminAuthMaxFailures: 3, adminAuthBlockSeconds: 60 });
  });
  afterAll(async () => h.stop());

  it('blocks an address after 3 failures, refuses even a valid token meanwhile, audits once, and lifts the block', async () => {
    const bad = h.client('kwadm_not-the-token-at-all');
    for (let i = 0; i < 3; i++)
      expect(errorOf(await bad.listOrganizations({}).catch((e: unknown) => e))).toMatchObject({
        grpc: status.UNAUTHENTICATED,
        code: 'invalid_credentials',
      });
    const blocked = errorOf(await h.root.listOrganizations({}).catch((e: unknown) => e));
    expect(blocked).toMatchObject({ grpc: status.RESOURCE_EXHAUSTED, code: 'too_many_auth_failures' });
    expect(blocked.info?.metadata.retry_after_seconds).toBe('60');
    h.clock.advance(59_000);
    expect(errorOf(await h.root.listOrganizations({}).catch((e: unknown) => e)).info?.metadata.retry_after_seconds).toBe('1');
    h.clock.advance(1_000);
    await h.root.listOrganizations({});
    const { events } = await h.root.listAuditEvents({ pageSize: 100 });
    expect(events.filter((e) => e.action === 'admin.auth_throttled').map((e) => ({ outcome: e.outcome, reason: e.reason }))).toEqual([
      { outcome: 'denied', reason: 'too_many_auth_failures' },
    ]);
    expect(events.filter((e) => e.action === 'admin.auth_failed')).toHaveLength(3);
    // A success cleared the failures: two more do not block.
    for (let i = 0; i < 2; i++) await bad.listOrganizations({}).catch(() => undefined);
    await h.client(TEST_ADMIN_TOKEN).listOrganizations({});
    expect(h.logs.join('')).not.toContain(TEST_ADMIN_TOKEN);
  });
});

describe('AuthThrottle', () => {
  it('reads the host of gRPC peer strings', () => {
    expect(peerHost('ipv4:10.0.0.1:5000')).toBe('10.0.0.1');
    expect(peerHost('ipv6:[::1]:5000')).toBe('::1');
    expect(peerHost('10.0.0.2:80')).toBe('10.0.0.2');
    expect(peerHost('unix:/run/keyward.sock')).toBe('unix:/run/keyward.sock');
  });

  it('counts failures per host within the window, and forgets the oldest host beyond maxPeers', () => {
    const t = new AuthThrottle({ maxFailures: 2, windowMs: 60_000, blockMs: 10_000, maxPeers: 2 });
    expect(t.failure('a', 0)).toBe(false);
    expect(t.failure('a', 61_000)).toBe(false); // a new window
    expect(t.failure('a', 62_000)).toBe(true);
    expect(t.blockedForMs('a', 62_000)).toBe(10_000);
    expect(t.failure('a', 63_000)).toBe(false); // already blocked: no second audit
    expect(t.blockedForMs('a', 72_000)).toBe(0);
    expect(t.failure('b', 0)).toBe(false);
    expect(t.failure('c', 0)).toBe(false); // evicts a, the oldest
    expect(t.failure('b', 1)).toBe(true);
    expect(new AuthThrottle({ maxFailures: 0, windowMs: 1, blockMs: 1 }).failure('x', 0)).toBe(false);
  });
});
