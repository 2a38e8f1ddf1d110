/**
 * The audit log: one row per mutation (in the mutation's transaction), one row per
 * failed admin authentication, and ListAuditEvents' filters and paging.
 */
import { status } from '@grpc/grpc-js';
import { DIALECTS } from './support/databases';
import { failure, startHarness, type AdminClient, type Harness } from './support/harness';
import { generateKey } from '../src/keys/format';
import type { AuditEvent, ListAuditEventsRequest } from '../src/gen/keyward/admin/v1/key_admin';

const DAY = 86_400_000;

type Expected = Pick<AuditEvent, 'action' | 'actor' | 'organizationId' | 'keyId' | 'outcome' | 'time'> & { reason?: string };

describe.each(DIALECTS)('audit log on %s', (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dialect);
  });
  afterAll(async () => h.stop());

  /** Moves the clock by an odd number of milliseconds (so precision loss shows) and returns the new time. */
  const step = (): Date => {
    h.clock.advance(1_234);
    return h.clock.now();
  };

  /** Every event matching the filter, newest first, in one page. */
  async function allEvents(filter: Partial<ListAuditEventsRequest> = {}): Promise<AuditEvent[]> {
    const { events, nextPageToken } = await h.root.listAuditEvents({ ...filter, pageSize: 1000 });
    expect(nextPageToken).toBe('');
    return events;
  }

  const newest = async () => (await allEvents())[0]!;

  function expectEvents(events: AuditEvent[], expected: Expected[]): void {
    expect(
      events.map(({ action, actor, organizationId, keyId, outcome, time }) => ({ action, actor, organizationId, keyId, outcome, time })),
    ).toEqual(expected.map(({ reason: _r, ...e }) => e));
    expected.forEach((e, i) => {
      if (e.reason !== undefined) expect([e.action, events[i]!.reason]).toEqual([e.action, e.reason]);
    });
    // The caller's address as the server saw it (grpc-js reports `127.0.0.1:<port>`).
    for (const e of events) expect(e.peer).toMatch(/127\.0\.0\.1:\d+$/);
  }

  it('writes one row per mutation with actor, target, outcome, peer and the clock time', async () => {
    const expected: Expected[] = [];
    const ok = (time: Date, action: string, actor: string, organizationId: string, keyId = '', reason?: string) =>
      expected.unshift({ action, actor, organizationId, keyId, outcome: 'success', time, reason });

    let t = step();
    const org = await h.root.createOrganization({ name: 'Audited' });
    ok(t, 'organization.create', 'admin', org.id);

    t = step();
    await h.root.updateOrganization({ id: org.id, name: 'Audited Inc', maxKeys: 50 });
    ok(t, 'organization.update', 'admin', org.id, '', 'changed: name,maxKeys');

    t = step();
    const adminKey = await h.root.createKey({ organizationId: org.id, name: 'org admin', scopes: ['admin'] });
    ok(t, 'key.create', 'admin', org.id, adminKey.key!.id);
    const asOrg: AdminClient = h.client(adminKey.secret);
    const orgActor = `key:${adminKey.key!.id}`;

    t = step();
    const k = await asOrg.createKey({ organizationId: org.id, name: 'svc', scopes: ['chat'] });
    ok(t, 'key.create', orgActor, org.id, k.key!.id);

    t = step();
    await asOrg.updateKey({ id: k.key!.id, name: 'svc-2' });
    ok(t, 'key.update', orgActor, org.id, k.key!.id);

    t = step();
    await asOrg.updateOrganization({ id: org.id, name: 'Audited by key' });
    ok(t, 'organization.update', orgActor, org.id, '', 'changed: name');

    t = step();
    const rotated = await asOrg.rotateKey({ id: k.key!.id, gracePeriodSeconds: 60 });
    ok(t, 'key.rotate', orgActor, org.id, k.key!.id);
    ok(t, 'key.create', orgActor, org.id, rotated.newKey!.id, `rotated_from=${k.key!.id}`);

    t = step();
    await asOrg.revokeKey({ id: rotated.newKey!.id, reason: 'compromised in incident 42' });
    ok(t, 'key.revoke', orgActor, org.id, rotated.newKey!.id, 'compromised in incident 42');

    t = step();
    const rootRevoked = await h.root.createKey({ organizationId: org.id, name: 'x' });
    ok(t, 'key.create', 'admin', org.id, rootRevoked.key!.id);
    t = step();
    await h.root.revokeKey({ id: rootRevoked.key!.id, reason: 'unused' });
    ok(t, 'key.revoke', 'admin', org.id, rootRevoked.key!.id, 'unused');

    expectEvents(await allEvents({ organizationId: org.id }), expected);
    // Reads (Get/List) are not audited.
    await asOrg.getKey({ id: k.key!.id });
    await h.root.listKeys({ organizationId: org.id });
    expect(await allEvents({ organizationId: org.id })).toHaveLength(expected.length);
    // The revoke reason is also kept on the key.
    await expect(h.root.getKey({ id: rotated.newKey!.id })).resolves.toMatchObject({
      revokeReason: 'compromised in incident 42',
      revokedBy: orgActor,
    });
    await expect(h.root.getKey({ id: rootRevoked.key!.id })).resolves.toMatchObject({ revokeReason: 'unused', revokedBy: 'admin' });
  });

  describe('every failed admin authentication writes admin.auth_failed', () => {
    async function expectAuthFailure(
      client: AdminClient,
      code: string,
      reason: string,
      target: { organizationId?: string; keyId?: string } = {},
    ) {
      const t = step();
      const e = await failure(client.listOrganizations({}));
      expect([e.grpc, e.code, e.trailerCode]).toEqual([status.UNAUTHENTICATED, code, code]);
      expectEvents(
        [await newest()],
        [
          {
            action: 'admin.auth_failed',
            actor: 'anonymous',
            outcome: 'denied',
            organizationId: target.organizationId ?? '',
            keyId: target.keyId ?? '',
            time: t,
            reason,
          },
        ],
      );
    }

    it('missing or unknown credentials', async () => {
      await expectAuthFailure(h.client(), 'missing_credentials', 'missing_credentials');
      await expectAuthFailure(h.client(''), 'missing_credentials', 'missing_credentials');
      await expectAuthFailure(h.client('wrong-token'), 'invalid_credentials', 'invalid_credentials');
      await expectAuthFailure(h.client(generateKey('live')), 'invalid_credentials', 'key_not_found');
    });

    it('keys that cannot administer', async () => {
      const org = await h.root.createOrganization({ name: 'auth' });
      const target = (k: { key?: { id: string } }) => ({ organizationId: org.id, keyId: k.key!.id });

      const noScope = await h.root.createKey({ organizationId: org.id, name: 'chat only', scopes: ['chat', '*'] });
      await expectAuthFailure(h.client(noScope.secret), 'invalid_credentials', 'missing_admin_scope', target(noScope));

      const revoked = await h.root.createKey({ organizationId: org.id, name: 'revoked', scopes: ['admin'] });
      await h.root.revokeKey({ id: revoked.key!.id, reason: 'r' });
      await expectAuthFailure(h.client(revoked.secret), 'invalid_credentials', 'key_revoked', target(revoked));

      const expiring = await h.root.createKey({ organizationId: org.id, name: 'expiring', scopes: ['admin'], expiresInDays: 1 });
      h.clock.advance(DAY);
      await expectAuthFailure(h.client(expiring.secret), 'invalid_credentials', 'key_expired', target(expiring));

      const good = await h.root.createKey({ organizationId: org.id, name: 'good', scopes: ['admin'] });
      await h.root.updateOrganization({ id: org.id, active: false });
      await expectAuthFailure(h.client(good.secret), 'invalid_credentials', 'organization_inactive', target(good));
    });

    it('a successful authentication writes nothing', async () => {
      const before = (await newest()).id;
      await h.root.listOrganizations({});
      expect((await newest()).id).toBe(before);
    });
  });

  describe('ListAuditEvents', () => {
    let orgX: string;
    let orgY: string;
    let keyX: string;
    /** The clock time of each phase: [before X's keys, X's key changes, Y's changes, after]. */
    let times: Date[];

    beforeAll(async () => {
      times = [step()];
      orgX = (await h.root.createOrganization({ name: 'X' })).id;
      keyX = (await h.root.createKey({ organizationId: orgX, name: 'kx' })).key!.id;
      await h.root.createKey({ organizationId: orgX, name: 'kx2' });
      times.push(step());
      await h.root.updateKey({ id: keyX, name: 'kx renamed' });
      await h.root.revokeKey({ id: keyX, reason: 'filter test' });
      times.push(step());
      orgY = (await h.root.createOrganization({ name: 'Y' })).id;
      const ky = (await h.root.createKey({ organizationId: orgY, name: 'ky' })).key!.id;
      await h.root.revokeKey({ id: ky, reason: 'other org' });
      times.push(step());
    });

    it('lists newest first, by strictly decreasing id', async () => {
      const events = await allEvents();
      expect(events.length).toBeGreaterThan(10);
      for (let i = 1; i < events.length; i++) {
        expect(events[i - 1]!.id).toBeGreaterThan(events[i]!.id);
        expect(events[i - 1]!.time!.getTime()).toBeGreaterThanOrEqual(events[i]!.time!.getTime());
      }
    });

    it('filters by organization', async () => {
      const x = await allEvents({ organizationId: orgX });
      expect(x.map((e) => e.action)).toEqual(['key.revoke', 'key.update', 'key.create', 'key.create', 'organization.create']);
      expect(new Set(x.map((e) => e.organizationId))).toEqual(new Set([orgX]));
      const y = await allEvents({ organizationId: orgY });
      expect(y.map((e) => e.action)).toEqual(['key.revoke', 'key.create', 'organization.create']);
    });

    it('filters by key', async () => {
      const events = await allEvents({ keyId: keyX });
      expect(events.map((e) => [e.action, e.keyId])).toEqual([
        ['key.revoke', keyX],
        ['key.update', keyX],
        ['key.create', keyX],
      ]);
    });

    it('filters by action, alone and combined with the organization', async () => {
      const revokes = await allEvents({ action: 'key.revoke' });
      expect(revokes.length).toBeGreaterThanOrEqual(2);
      expect(new Set(revokes.map((e) => e.action))).toEqual(new Set(['key.revoke']));
      expect(revokes.slice(0, 2).map((e) => e.reason)).toEqual(['other org', 'filter test']);
      const xRevokes = await allEvents({ action: 'key.revoke', organizationId: orgX });
      expect(xRevokes.map((e) => [e.keyId, e.reason])).toEqual([[keyX, 'filter test']]);
      expect(await allEvents({ action: 'no.such.action' })).toEqual([]);
    });

    it('filters by time range: start inclusive, end exclusive', async () => {
      const [t0, t1, t2, t3] = times as [Date, Date, Date, Date];
      const phase = async (startTime?: Date, endTime?: Date) =>
        (await allEvents({ startTime, endTime })).map((e) => [e.action, e.time!.getTime()]);
      expect(await phase(t1, t2)).toEqual([
        ['key.revoke', t1.getTime()],
        ['key.update', t1.getTime()],
      ]);
      expect(await phase(t0, t1)).toEqual([
        ['key.create', t0.getTime()],
        ['key.create', t0.getTime()],
        ['organization.create', t0.getTime()],
      ]);
      expect(await phase(new Date(t1.getTime() + 1), t2)).toEqual([]);
      expect(await phase(new Date(t1.getTime() - 1), new Date(t1.getTime() + 1))).toHaveLength(2);
      expect((await phase(t2)).map(([a]) => a)).toEqual(['key.revoke', 'key.create', 'organization.create']);
      expect(await phase(t3)).toEqual([]);
      const beforeT1 = await phase(undefined, t1);
      expect(beforeT1.every(([, time]) => (time as number) < t1.getTime())).toBe(true);
      expect(beforeT1.slice(0, 3).map(([, time]) => time)).toEqual([t0.getTime(), t0.getTime(), t0.getTime()]);
    });

    it('rejects an empty or reversed time range', async () => {
      const [t0, t1] = times as [Date, Date];
      for (const [startTime, endTime] of [
        [t1, t0],
        [t1, t1],
      ]) {
        const e = await failure(h.root.listAuditEvents({ startTime, endTime }));
        expect([e.grpc, e.code, e.trailerCode, e.field]).toEqual([
          status.INVALID_ARGUMENT,
          'invalid_argument',
          'invalid_argument',
          'end_time',
        ]);
      }
    });

    it('rejects times the store cannot compare, naming the field (found by fuzzing: internal on PostgreSQL)', async () => {
      for (const [req, field] of [
        [{ startTime: new Date(-1000) }, 'start_time'],
        [{ endTime: new Date(8.64e15) }, 'end_time'],
        [{ startTime: new Date(Date.UTC(10000, 0, 1)) }, 'start_time'],
      ] as [Partial<ListAuditEventsRequest>, string][]) {
        const e = await failure(h.root.listAuditEvents(req));
        expect([e.grpc, e.code, e.field]).toEqual([status.INVALID_ARGUMENT, 'invalid_argument', field]);
      }
    });

    it('pages with page_size 2 through every row, with no duplicates or gaps', async () => {
      for (const filter of [{}, { organizationId: orgX }, { action: 'key.create' }] as Partial<ListAuditEventsRequest>[]) {
        const all = (await allEvents(filter)).map((e) => e.id);
        const walked: number[] = [];
        let pageToken = '';
        let pages = 0;
        do {
          const page = await h.root.listAuditEvents({ ...filter, pageSize: 2, pageToken });
          expect(page.events.length).toBeGreaterThan(0);
          expect(page.events.length).toBeLessThanOrEqual(2);
          walked.push(...page.events.map((e) => e.id));
          pageToken = page.nextPageToken;
          pages++;
        } while (pageToken !== '' && pages < 1000);
        expect(walked).toEqual(all);
        expect(new Set(walked).size).toBe(walked.length);
        expect(pages).toBe(Math.ceil(all.length / 2));
      }
    });
  });

  describe('a failed mutation writes no success row', () => {
    it('key_limit_exceeded, organization_inactive and invalid_argument leave the log unchanged', async () => {
      const org = await h.root.createOrganization({ name: 'full', maxKeys: 1 });
      const k = await h.root.createKey({ organizationId: org.id, name: 'only' });
      const before = await allEvents({ organizationId: org.id });
      expect(before.map((e) => e.action)).toEqual(['key.create', 'organization.create']);

      expect((await failure(h.root.createKey({ organizationId: org.id, name: 'one too many' }))).code).toBe('key_limit_exceeded');
      expect((await failure(h.root.createKey({ organizationId: org.id, name: '' }))).code).toBe('invalid_argument');
      expect((await failure(h.root.updateOrganization({ id: org.id, maxKeys: 0 }))).code).toBe('invalid_argument');
      await h.root.revokeKey({ id: k.key!.id, reason: 'r' });
      expect((await failure(h.root.revokeKey({ id: k.key!.id, reason: 'again' }))).code).toBe('key_revoked');
      expect((await failure(h.root.rotateKey({ id: k.key!.id }))).code).toBe('key_revoked');
      await h.root.updateOrganization({ id: org.id, active: false });
      expect((await failure(h.root.createKey({ organizationId: org.id, name: 'inactive' }))).code).toBe('organization_inactive');

      const after = await allEvents({ organizationId: org.id });
      expect(after.map((e) => [e.action, e.outcome])).toEqual([
        ['organization.update', 'success'],
        ['key.revoke', 'success'],
        ['key.create', 'success'],
        ['organization.create', 'success'],
      ]);
      expect(after.filter((e) => e.action === 'key.create').map((e) => e.keyId)).toEqual([k.key!.id]);
    });
  });
});
