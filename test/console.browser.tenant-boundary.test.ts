/**
 * The web console in a real browser, signed in as a tenant (an admin-scoped key of
 * organization A): it lands on its own organization, has no organization list or
 * creation, manages its own keys, and cannot see or touch organization B, neither by
 * editing the URL hash to B's ids nor by calling the API for B from the page with its own
 * valid CSRF token.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { describeBrowser, domText, fetchFromPage, launchBrowser, newPage, screenshot, unlabelledControls } from './support/browser';
import { startHarness, type Harness } from './support/harness';

describeBrowser('the console in a browser, as a tenant', () => {
  let h: Harness;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let problems: string[];
  let base: string;
  const a = { id: '', adminSecret: '' };
  const b = { id: '', keyId: '' };

  beforeAll(async () => {
    h = await startHarness('sqlite', { consoleListen: '127.0.0.1:0' });
    base = `http://127.0.0.1:${h.app.consolePort}`;
    a.id = (await h.root.createOrganization({ name: 'Alpha Tenant' })).id;
    a.adminSecret = (await h.root.createKey({ organizationId: a.id, name: 'alpha-admin', scopes: ['admin'] })).secret;
    b.id = (await h.root.createOrganization({ name: 'Bravo Secret Org' })).id;
    b.keyId = (await h.root.createKey({ organizationId: b.id, name: 'bravo-key', scopes: ['chat'] })).key!.id;
    browser = await launchBrowser();
    ({ context, page, problems } = await newPage(browser, base));
  });
  afterAll(async () => {
    await context?.close();
    await browser?.close();
    await h?.stop();
  });
  afterEach(async () => {
    expect(problems).toEqual([]);
    expect(await unlabelledControls(page)).toEqual([]);
  });

  const text = async (selector: string) => ((await page.locator(selector).textContent()) ?? '').trim();

  /** Goes (by the hash) to its own organization's page first, so that what follows is a fresh page. */
  async function fromOwnPage(): Promise<void> {
    await page.evaluate(`location.hash = ${JSON.stringify(`#/orgs/${a.id}`)}`);
    await page.locator('[data-testid=org-details]').waitFor();
    expect(await page.locator('[data-testid=load-error]').count()).toBe(0);
  }

  /** The page shows nothing of organization B. */
  async function expectNothingOfB(): Promise<void> {
    const dom = await domText(page);
    expect(dom).not.toContain('Bravo Secret Org');
    expect(dom).not.toContain('bravo-key');
    expect(dom).not.toContain(b.keyId);
  }

  it('signs in with an admin-scoped key and lands on its own organization, without the organization list', async () => {
    await page.goto('/#/orgs');
    await page.getByLabel('Admin token or admin-scoped API key').fill(a.adminSecret);
    await page.getByLabel('Admin token or admin-scoped API key').press('Enter');
    await page.locator('[data-testid=org-details]').waitFor();
    expect(page.url()).toBe(`${base}/#/orgs/${a.id}`);
    expect(await text('[data-testid=org-title]')).toBe('Alpha Tenant');
    expect(await text('[data-testid=session-kind]')).toBe(`Organization ${a.id}`);
    expect(await page.locator('[data-testid=nav-orgs]').count()).toBe(0);
    expect(await page.locator('[data-testid=org-create-form]').count()).toBe(0);
    // Only the name is the tenant's to change; no deactivation or deletion.
    expect(await page.locator('#org-edit-name').count()).toBe(1);
    expect(await page.locator('#org-edit-rate').count()).toBe(0);
    expect(await page.locator('#org-toggle-active').count()).toBe(0);
    expect(await page.locator('[data-testid=org-delete-form]').count()).toBe(0);
    expect(await domText(page)).not.toContain(a.adminSecret);
    await screenshot(page, 'tenant-organization');

    // The organization list's route sends it back to its own organization.
    await page.goto('/#/orgs');
    await page.waitForURL(`${base}/#/orgs/${a.id}`);
    await page.locator('[data-testid=org-details]').waitFor();
    await expectNothingOfB();
  });

  it('renames its organization, creates a key in it and sees its usage', async () => {
    await page.locator('#org-edit-name').fill('Alpha Renamed');
    await page.locator('#org-edit-name').press('Enter');
    await page.locator('[data-testid=org-title]', { hasText: 'Alpha Renamed' }).waitFor();
    expect((await h.root.getOrganization({ id: a.id })).name).toBe('Alpha Renamed');

    await page.locator('[data-testid=tab-keys]').click();
    await page.locator('[data-testid=keys-table]').waitFor();
    await page.getByLabel('Name', { exact: true }).fill('alpha-worker');
    await page.getByLabel('Name', { exact: true }).press('Enter');
    const secret = await page.locator('[data-testid=secret-value]').inputValue();
    expect(secret).toMatch(/^kw_live_/);
    await page.locator('#secret-close').click();
    await page.locator('[data-testid=secret-panel]').waitFor({ state: 'detached' });
    expect(await domText(page)).not.toContain(secret);
    const keys = (await h.root.listKeys({ organizationId: a.id })).keys.map((k) => k.name).sort();
    expect(keys).toEqual(['alpha-admin', 'alpha-worker']);

    // Its usage page: no quota set, shown as unlimited.
    await page.locator('[data-testid=tab-usage]').click();
    await page.locator('[data-testid=quota-text]').waitFor();
    expect(await page.locator('[data-testid=quota-text]').textContent()).toBe('Unlimited — 0 requests used.');
    expect(await page.locator('[data-testid=usage-total-requests]').textContent()).toBe('0');
  });

  it.each([
    ['overview', () => `#/orgs/${b.id}`],
    ['keys', () => `#/orgs/${b.id}/keys`],
    ['usage', () => `#/orgs/${b.id}/usage`],
    ['key', () => `#/keys/${b.keyId}`],
  ])('editing the URL hash to organization B (%s) shows a refusal and nothing of B', async (name, hash) => {
    await fromOwnPage();
    await page.evaluate(`location.hash = ${JSON.stringify(hash())}`);
    const error = page.locator('[data-testid=load-error]').first();
    await error.waitFor();
    expect(['permission_denied', 'organization_not_found', 'key_not_found']).toContain(await error.getAttribute('data-code'));
    expect(await error.getAttribute('role')).toBe('alert');
    await expectNothingOfB();
    if (name === 'overview') await screenshot(page, 'tenant-refused');
  });

  it("editing the URL hash to organization B (audit) shows a refusal and none of B's events", async () => {
    await h.root.revokeKey({ id: (await h.root.createKey({ organizationId: b.id, name: 'bravo-old' })).key!.id, reason: 'bravo only' });
    await fromOwnPage();
    await page.evaluate(`location.hash = ${JSON.stringify(`#/orgs/${b.id}/audit`)}`);
    const error = page.locator('[data-testid=audit-error][role=alert]');
    await error.waitFor();
    expect(await error.getAttribute('data-code')).toBe('permission_denied');
    expect(await page.locator('[data-testid=audit-row]').count()).toBe(0);
    await expectNothingOfB();
    await screenshot(page, 'tenant-audit-of-b');
  });

  it('cannot call the API for organization B from the page, even with its own valid CSRF token', async () => {
    const session = await fetchFromPage(page, '/api/session', { method: 'GET' });
    expect(session.status).toBe(200);
    expect(session.body).toMatchObject({ kind: 'org', organizationId: a.id });
    const csrf = session.body.csrfToken as string;
    const call = (method: string, body: object) =>
      fetchFromPage(page, `/api/rpc/${method}`, { headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body });

    // Its own organization works with the same token.
    expect((await call('GetOrganization', { id: a.id })).status).toBe(200);

    const attempts: [string, object][] = [
      ['GetOrganization', { id: b.id }],
      ['UpdateOrganization', { id: b.id, name: 'pwned' }],
      ['DeleteOrganization', { organizationId: b.id, reason: 'pwned' }],
      ['ListKeys', { organizationId: b.id }],
      ['CreateKey', { organizationId: b.id, name: 'intruder', scopes: ['admin'] }],
      ['GetKey', { id: b.keyId }],
      ['UpdateKey', { id: b.keyId, enabled: false }],
      ['RevokeKey', { id: b.keyId, reason: 'pwned' }],
      ['RotateKey', { id: b.keyId }],
      ['GetRateLimitStatus', { keyId: b.keyId }],
      ['ResetRateLimit', { keyId: b.keyId }],
      ['GetQuota', { organizationId: b.id }],
      ['GetUsageStats', { organizationId: b.id }],
      ['CreateOrganization', { name: 'tenant-made' }],
    ];
    for (const [method, body] of attempts) {
      const r = await call(method, body);
      expect({ method, status: r.status === 403 || r.status === 404 ? 'refused' : r.status }).toEqual({ method, status: 'refused' });
      expect(['permission_denied', 'organization_not_found', 'key_not_found']).toContain(r.body.error?.code);
      expect(JSON.stringify(r.body)).not.toContain('Bravo Secret Org');
    }
    // Nothing changed in B.
    const org = await h.root.getOrganization({ id: b.id });
    expect(org).toMatchObject({ name: 'Bravo Secret Org', active: true });
    expect(org.deletedAt).toBeUndefined();
    const key = await h.root.getKey({ id: b.keyId });
    expect(key.enabled).toBe(true);
    expect(key.revokedAt).toBeUndefined();
    expect(key.replacedByKeyId).toBe('');
    expect((await h.root.listKeys({ organizationId: b.id })).keys.map((k) => k.name)).toEqual(['bravo-key']);
    expect((await h.root.listOrganizations({})).organizations.map((o) => o.name)).not.toContain('tenant-made');
  });
});
