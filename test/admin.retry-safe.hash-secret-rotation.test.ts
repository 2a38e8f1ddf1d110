/**
 * The sealed secret of a remembered CreateKey follows the hash secret: after a restart
 * with a new KEYWARD_HASH_SECRET and the old one as KEYWARD_HASH_SECRET_PREVIOUS, a
 * retry still returns the first secret; once neither is the secret it was sealed
 * under, the retry is refused (request_id_unrecoverable) and creates nothing.
 */
import { randomBytes } from 'node:crypto';
import { createTestDatabase, DIALECTS, type TestDatabase } from './support/databases';
import { failure, startHarness, type Harness } from './support/harness';

describe.each(DIALECTS)('retry-safe CreateKey across a hash-secret rotation on %s', (dialect) => {
  let db: TestDatabase;
  let h: Harness | undefined;
  beforeEach(async () => {
    db = await createTestDatabase(dialect);
  });
  afterEach(async () => {
    await h?.stop();
    await db.dispose();
  });

  it('the previous secret still opens it; an unknown one does not', async () => {
    const [first, second, third] = [randomBytes(32), randomBytes(32), randomBytes(32)];
    h = await startHarness(dialect, { reuseDatabase: db, hashSecret: first });
    const orgId = (await h.root.createOrganization({ name: 'acme' })).id;
    const req = { organizationId: orgId, name: 'ci', requestId: 'rotate-me' };
    const created = await h.root.createKey(req);
    await h.stop();

    h = await startHarness(dialect, { reuseDatabase: db, hashSecret: second, hashSecretPrevious: first });
    expect(await h.root.createKey(req)).toEqual(created);
    await h.stop();

    h = await startHarness(dialect, { reuseDatabase: db, hashSecret: third });
    const e = await failure(h.root.createKey(req));
    expect([e.code, e.field, e.info?.metadata.violation]).toEqual(['invalid_argument', 'request_id', 'request_id_unrecoverable']);
    expect((await h.root.listKeys({ organizationId: orgId })).keys.map((k) => k.id)).toEqual([created.key!.id]);
  });
});
