import { DIALECTS } from './support/databases';
import { startHarness, type Harness } from './support/harness';

describe.each(DIALECTS)('KeyAdmin smoke on %s', (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dialect);
  });
  afterAll(async () => h.stop());

  it('creates an organization and a key, and lists it', async () => {
    const org = await h.root.createOrganization({ name: 'Acme' });
    expect(org.id).toMatch(/^org_/);
    const created = await h.root.createKey({ organizationId: org.id, name: 'k1', scopes: ['chat'] });
    expect(created.secret).toMatch(/^kw_live_/);
    const list = await h.root.listKeys({ organizationId: org.id });
    expect(list.keys.map((k) => k.id)).toEqual([created.key!.id]);
  });
});
