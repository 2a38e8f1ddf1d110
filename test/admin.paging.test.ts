/**
 * Keyset paging of ListOrganizations and ListKeys: creation order, no duplicates or
 * gaps, an empty next_page_token on the last page; include_revoked.
 */
import { DIALECTS } from './support/databases';
import { startHarness, type Harness } from './support/harness';
import { KeyStatus } from '../src/gen/keyward/admin/v1/key_admin';

const DAY = 86_400_000;

interface Page<T> {
  items: T[];
  nextPageToken: string;
}

/** Walks every page; returns the page sizes and the ids in order. */
async function walk(
  fetch: (pageToken: string) => Promise<Page<{ id: string }>>,
): Promise<{ sizes: number[]; ids: string[]; tokens: string[] }> {
  const sizes: number[] = [];
  const ids: string[] = [];
  const tokens: string[] = [];
  let token = '';
  do {
    const page = await fetch(token);
    sizes.push(page.items.length);
    ids.push(...page.items.map((x) => x.id));
    tokens.push(page.nextPageToken);
    token = page.nextPageToken;
  } while (token !== '' && sizes.length < 100);
  return { sizes, ids, tokens };
}

describe.each(DIALECTS)('paging on %s', (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dialect);
  });
  afterAll(async () => h.stop());

  /** Each creation happens a second after the previous one. */
  const later = () => h.clock.advance(1000);

  const orgPages = (pageSize: number) => (pageToken: string) =>
    h.root.listOrganizations({ pageSize, pageToken }).then((r) => ({ items: r.organizations, nextPageToken: r.nextPageToken }));
  const keyPages =
    (organizationId: string, pageSize: number, includeRevoked = false) =>
    (pageToken: string) =>
      h.root
        .listKeys({ organizationId, pageSize, pageToken, includeRevoked })
        .then((r) => ({ items: r.keys, nextPageToken: r.nextPageToken }));

  it('pages through 7 organizations 3 at a time, in creation order', async () => {
    const created: string[] = [];
    for (let i = 0; i < 7; i++) {
      later();
      created.push((await h.root.createOrganization({ name: `org ${i}` })).id);
    }
    const { sizes, ids, tokens } = await walk(orgPages(3));
    expect(sizes).toEqual([3, 3, 1]);
    expect(tokens[0]).not.toBe('');
    expect(tokens[1]).not.toBe('');
    expect(tokens[2]).toBe('');
    expect(ids).toEqual(created);
    expect(new Set(ids).size).toBe(7);
    // One page of the default size holds them all.
    const all = await h.root.listOrganizations({});
    expect(all.organizations.map((o) => o.id)).toEqual(created);
    expect(all.nextPageToken).toBe('');
  });

  it('pages through 7 keys 3 at a time, in creation order, within their organization only', async () => {
    const org = await h.root.createOrganization({ name: 'keys' });
    const other = await h.root.createOrganization({ name: 'other' });
    const created: string[] = [];
    for (let i = 0; i < 7; i++) {
      later();
      created.push((await h.root.createKey({ organizationId: org.id, name: `key ${i}` })).key!.id);
      await h.root.createKey({ organizationId: other.id, name: `noise ${i}` });
    }
    const { sizes, ids, tokens } = await walk(keyPages(org.id, 3));
    expect(sizes).toEqual([3, 3, 1]);
    expect(tokens.slice(0, 2).every((t) => t !== '')).toBe(true);
    expect(tokens[2]).toBe('');
    expect(ids).toEqual(created);
    expect(new Set(ids).size).toBe(7);
  });

  it('a count that divides evenly ends on a full page with an empty token', async () => {
    const org = await h.root.createOrganization({ name: 'six' });
    const created: string[] = [];
    for (let i = 0; i < 6; i++) {
      later();
      created.push((await h.root.createKey({ organizationId: org.id, name: `key ${i}` })).key!.id);
    }
    const { sizes, ids, tokens } = await walk(keyPages(org.id, 3));
    expect(sizes).toEqual([3, 3]);
    expect(tokens[1]).toBe('');
    expect(ids).toEqual(created);
  });

  it('an organization without keys gives one empty page', async () => {
    const org = await h.root.createOrganization({ name: 'empty' });
    await expect(h.root.listKeys({ organizationId: org.id, pageSize: 3 })).resolves.toEqual({ keys: [], nextPageToken: '' });
  });

  it('include_revoked false hides revoked keys (expired keys are always listed); true shows them', async () => {
    const org = await h.root.createOrganization({ name: 'revoked' });
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      later();
      ids.push((await h.root.createKey({ organizationId: org.id, name: `key ${i}`, expiresInDays: i === 4 ? 1 : undefined })).key!.id);
    }
    for (const i of [0, 2, 3, 6]) await h.root.revokeKey({ id: ids[i]!, reason: 'test' });
    h.clock.advance(2 * DAY); // key 4 is now expired

    const visible = await walk(keyPages(org.id, 3));
    expect(visible.ids).toEqual([ids[1], ids[4], ids[5]]);
    expect(visible.sizes).toEqual([3]);

    const everything = await walk(keyPages(org.id, 3, true));
    expect(everything.ids).toEqual(ids);
    expect(everything.sizes).toEqual([3, 3, 1]);

    const byId = new Map((await h.root.listKeys({ organizationId: org.id, includeRevoked: true })).keys.map((k) => [k.id, k.status]));
    expect(ids.map((id) => byId.get(id))).toEqual([
      KeyStatus.KEY_STATUS_REVOKED,
      KeyStatus.KEY_STATUS_ACTIVE,
      KeyStatus.KEY_STATUS_REVOKED,
      KeyStatus.KEY_STATUS_REVOKED,
      KeyStatus.KEY_STATUS_EXPIRED,
      KeyStatus.KEY_STATUS_ACTIVE,
      KeyStatus.KEY_STATUS_REVOKED,
    ]);
  });

  it('a page token from one list resumes correctly even when rows are added meanwhile', async () => {
    const org = await h.root.createOrganization({ name: 'growing' });
    const created: string[] = [];
    for (let i = 0; i < 4; i++) {
      later();
      created.push((await h.root.createKey({ organizationId: org.id, name: `key ${i}` })).key!.id);
    }
    const first = await h.root.listKeys({ organizationId: org.id, pageSize: 3 });
    expect(first.keys.map((k) => k.id)).toEqual(created.slice(0, 3));
    later();
    created.push((await h.root.createKey({ organizationId: org.id, name: 'late' })).key!.id);
    const rest = await h.root.listKeys({ organizationId: org.id, pageSize: 3, pageToken: first.nextPageToken });
    expect(rest.keys.map((k) => k.id)).toEqual(created.slice(3));
    expect(rest.nextPageToken).toBe('');
  });
});
