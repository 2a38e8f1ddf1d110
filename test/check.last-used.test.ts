/**
 * last_used_at is batched: a Check records the time in memory; flush() writes the
 * latest time per key; the stored value only moves forward.
 */
import { DIALECTS } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { EnvoyClient } from './support/envoy-client';

const SECOND = 1000;

describe.each(DIALECTS)('last_used_at on %s', (dialect) => {
  let h: Harness;
  let envoy: EnvoyClient;
  let orgId: string;
  let n = 0;

  beforeAll(async () => {
    // The harness holds the app's timers: only explicit flushes write.
    h = await startHarness(dialect);
    envoy = new EnvoyClient(h.app.authzPort);
    orgId = (await h.root.createOrganization({ name: 'Acme' })).id;
  });
  afterAll(async () => {
    envoy.close();
    await h.stop();
  });

  const newKey = async (scopes = ['chat']) => {
    const r = await h.root.createKey({ organizationId: orgId, name: `k${++n}`, scopes });
    return { id: r.key!.id, secret: r.secret };
  };
  const allowed = async (secret: string, ext: Record<string, string> = {}) => {
    const r = await envoy.check({ headers: { authorization: `Bearer ${secret}` }, contextExtensions: ext });
    return r.http_response === 'ok_response';
  };
  const lastUsed = async (id: string) => (await h.root.getKey({ id })).lastUsedAt?.toISOString();

  it('a Check does not write at once; flush() writes the time of the Check', async () => {
    const k = await newKey();
    expect(await lastUsed(k.id)).toBeUndefined();
    const t1 = h.clock.now().toISOString();
    expect(await allowed(k.secret)).toBe(true);
    expect(await lastUsed(k.id)).toBeUndefined();
    expect(h.app.lastUsed.size).toBeGreaterThanOrEqual(1);

    // The clock moves on before the flush: the Check's time is written, not the flush's.
    h.clock.advance(5 * SECOND);
    await h.app.lastUsed.flush();
    expect(await lastUsed(k.id)).toBe(t1);
    expect(h.app.lastUsed.size).toBe(0);
  });

  it('a later Check and flush move it forward; several Checks between flushes write the latest', async () => {
    const k = await newKey();
    expect(await allowed(k.secret)).toBe(true);
    await h.app.lastUsed.flush();
    const first = await lastUsed(k.id);
    expect(first).toBe(h.clock.now().toISOString());

    h.clock.advance(60 * SECOND);
    expect(await allowed(k.secret)).toBe(true);
    expect(await lastUsed(k.id)).toBe(first);
    h.clock.advance(7 * SECOND);
    const t3 = h.clock.now().toISOString();
    expect(await allowed(k.secret)).toBe(true);
    await h.app.lastUsed.flush();
    expect(await lastUsed(k.id)).toBe(t3);
  });

  it('never moves backward, even when a Check happens at an earlier time', async () => {
    const k = await newKey();
    const late = h.clock.now().getTime() + 3600 * SECOND;
    h.clock.set(late);
    expect(await allowed(k.secret)).toBe(true);
    await h.app.lastUsed.flush();
    expect(await lastUsed(k.id)).toBe(new Date(late).toISOString());

    h.clock.set(late - 600 * SECOND);
    expect(await allowed(k.secret)).toBe(true);
    await h.app.lastUsed.flush();
    expect(await lastUsed(k.id)).toBe(new Date(late).toISOString());

    h.clock.set(late + 1);
    expect(await allowed(k.secret)).toBe(true);
    await h.app.lastUsed.flush();
    expect(await lastUsed(k.id)).toBe(new Date(late + 1).toISOString());
  });

  it('denied Checks are not uses; each key gets its own time', async () => {
    const denied = await newKey(['chat']);
    const used = await newKey(['chat', 'agents:read']);
    const t = h.clock.now().toISOString();
    expect(await allowed(denied.secret, { required_scopes: 'agents:read' })).toBe(false);
    expect(await allowed(used.secret, { required_scopes: 'agents:read' })).toBe(true);
    await h.app.lastUsed.flush();
    expect(await lastUsed(denied.id)).toBeUndefined();
    expect(await lastUsed(used.id)).toBe(t);

    await h.root.revokeKey({ id: denied.id, reason: 'x' });
    h.clock.advance(SECOND);
    expect(await allowed(denied.secret)).toBe(false);
    await h.app.lastUsed.flush();
    expect(await lastUsed(denied.id)).toBeUndefined();
  });
});
