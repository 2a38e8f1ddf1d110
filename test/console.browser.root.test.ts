/**
 * The web console in a real browser (Debian's chromium), signed in with the admin token,
 * against a real keyward (sqlite, manual clock): sign-in, an organization and a key
 * created from the page, the key's secret shown exactly once, real Checks with it seen in
 * the usage chart and tables, the key revoked and its audit entry found with the audit
 * filters, paging of the audit log, CSRF refusal, and an expired session sending the page
 * back to sign-in. Each page is saved to test-results/console/<page>.png.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import {
  describeBrowser,
  domText,
  fetchFromPage,
  launchBrowser,
  newPage,
  screenshot,
  storageOf,
  unlabelledControls,
} from './support/browser';
import { EnvoyClient } from './support/envoy-client';
import { startHarness, TEST_ADMIN_TOKEN, type Harness } from './support/harness';
import { UsageRecord } from '../src/gen/keyward/admin/v1/key_admin';

describeBrowser('the console in a browser, as the administrator', () => {
  let h: Harness;
  let envoy: EnvoyClient;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let problems: string[];
  let base: string;
  const s = { orgId: '', keyId: '', secret: '' };

  beforeAll(async () => {
    h = await startHarness('sqlite', { consoleListen: '127.0.0.1:0' });
    envoy = new EnvoyClient(h.app.authzPort);
    base = `http://127.0.0.1:${h.app.consolePort}`;
    browser = await launchBrowser();
    ({ context, page, problems } = await newPage(browser, base));
  });
  afterAll(async () => {
    await context?.close();
    await browser?.close();
    envoy?.close();
    await h?.stop();
  });
  afterEach(async () => {
    // No script error and no CSP violation on any page, and every control labelled.
    expect(problems).toEqual([]);
    expect(await unlabelledControls(page)).toEqual([]);
  });

  const text = async (selector: string) => ((await page.locator(selector).textContent()) ?? '').trim();

  it('signs in with the admin token from the keyboard; a wrong one is told next to the field', async () => {
    await page.goto('/');
    const field = page.getByLabel('Admin token or admin-scoped API key');
    await field.waitFor();
    expect(await field.getAttribute('type')).toBe('password');
    expect(await field.getAttribute('autocomplete')).toBe('off');
    await screenshot(page, 'sign-in', { docs: true });

    await field.fill('kwadm_not-the-token');
    await field.press('Enter');
    const error = page.locator('#signin-credential-error[role=alert]');
    await error.waitFor();
    expect(await error.textContent()).toMatch(/^Admin token or admin-scoped API key: /);
    expect(await field.getAttribute('aria-invalid')).toBe('true');
    expect(await field.inputValue()).toBe('');

    await field.fill(TEST_ADMIN_TOKEN);
    await field.press('Enter');
    await page.locator('[data-testid=orgs-table]').waitFor();
    expect(await text('[data-testid=session-kind]')).toBe('Administrator');
    expect(page.url()).toBe(`${base}/#/orgs`);
    // Neither the credential nor the CSRF token is kept anywhere a script can read.
    const csrf = (await fetchFromPage(page, '/api/session', { method: 'GET' })).body.csrfToken as string;
    expect(csrf).toEqual(expect.any(String));
    const stored = JSON.stringify(await storageOf(page));
    expect(stored).not.toContain(TEST_ADMIN_TOKEN);
    expect(stored).not.toContain(csrf);
    expect(await domText(page)).not.toContain(TEST_ADMIN_TOKEN);
  });

  it('creates an organization; a bad value is told next to its field', async () => {
    await page.getByLabel('Name', { exact: true }).fill('Acme');
    await page.getByLabel('Billing anchor day').fill('31');
    await page.getByLabel('Billing anchor day').press('Enter');
    const anchorError = page.locator('#org-anchor-error[role=alert]');
    await anchorError.waitFor();
    expect(await anchorError.textContent()).toMatch(/anchor|1\.\.28|28/i);

    await page.getByLabel('Billing anchor day').fill('5');
    await page.getByLabel('Rate limit per minute').fill('120');
    await page.getByLabel('Monthly quota (requests)').fill('1000');
    await page.locator('#org-create-submit').click();
    await page.waitForURL(/#\/orgs\/org_/);
    s.orgId = decodeURIComponent(page.url().split('#/orgs/')[1]!);
    await page.locator('[data-testid=org-details]').waitFor();
    expect(await text('[data-testid=org-title]')).toBe('Acme');
    const org = await h.root.getOrganization({ id: s.orgId });
    expect(org).toMatchObject({ name: 'Acme', rateLimitPerMinute: 120, monthlyQuota: 1000, billingAnchorDay: 5, active: true });
    await screenshot(page, 'organization');

    await page.goto('/#/orgs');
    await page.locator(`[data-testid=org-row-${s.orgId}]`).waitFor();
    expect(await text(`[data-testid=org-row-${s.orgId}]`)).toContain('Acme');
    await screenshot(page, 'organizations', { docs: true });
  });

  it('creates a key and shows its secret exactly once', async () => {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
    await page.goto(`/#/orgs/${s.orgId}/keys`);
    await page.locator('[data-testid=keys-table]').waitFor();
    await page.getByLabel('Name', { exact: true }).fill('backend');
    await page.getByLabel('Scopes').fill('chat, agents:read');
    await page.getByLabel('Rate limit per minute').fill('100');
    await page.getByLabel('Expires in (days)').fill('30');
    await page.getByLabel('Expires in (days)').press('Enter');

    const panel = page.locator('[data-testid=secret-panel]');
    await panel.waitFor();
    s.secret = await page.locator('[data-testid=secret-value]').inputValue();
    expect(s.secret).toMatch(/^kw_live_/);
    await page.locator('#secret-copy').click();
    await page.locator('[data-testid=secret-copy-status]').waitFor();
    expect(await page.evaluate('navigator.clipboard.readText()')).toBe(s.secret);
    // The key is in the list with its status, never used yet.
    const keys = await h.root.listKeys({ organizationId: s.orgId });
    expect(keys.keys).toHaveLength(1);
    s.keyId = keys.keys[0]!.id;
    expect(keys.keys[0]).toMatchObject({ name: 'backend', scopes: ['chat', 'agents:read'], rateLimitPerMinute: 100 });
    expect(await text(`[data-testid=key-status-${s.keyId}]`)).toBe('active');
    expect(await text(`[data-testid=key-last-used-${s.keyId}]`)).toBe('never');

    await page.locator('#secret-close').click();
    await panel.waitFor({ state: 'detached' });
    // Gone from the page, never in the URL or script-readable storage.
    expect(await domText(page)).not.toContain(s.secret);
    expect(page.url()).not.toContain(s.secret);
    expect(JSON.stringify(await storageOf(page))).not.toContain(s.secret);
    await screenshot(page, 'keys', { docs: true });
    // And not to be had again: a reload shows the key without it.
    await page.reload();
    await page.locator(`[data-testid=key-row-${s.keyId}]`).waitFor();
    expect(await domText(page)).not.toContain(s.secret);
    // It is the real key.
    const r = await envoy.check({ headers: { authorization: `Bearer ${s.secret}` } });
    expect(r.http_response).toBe('ok_response');
  });

  it('shows real Checks in the usage chart, the tables and the quota gauge', async () => {
    // One Check was made above; two more on another endpoint.
    for (let i = 0; i < 2; i++) {
      const r = await envoy.check({ path: '/v1/chat', method: 'POST', headers: { 'x-api-key': s.secret } });
      expect(r.http_response).toBe('ok_response');
    }
    // A service's own report: one 503 that took 40 ms and cost 0.25.
    await h.root.recordUsage({
      records: [
        UsageRecord.fromPartial({ keyId: s.keyId, endpoint: '/v1/chat', method: 'POST', statusCode: 503, durationMs: 40, costUsd: 0.25 }),
      ],
    });
    await h.app.usage.flush();
    await h.app.lastUsed.flush();

    // The list shows the key's last use (the manual clock's time).
    expect(page.url()).toBe(`${base}/#/orgs/${s.orgId}/keys`);
    await page.reload();
    await page.locator(`[data-testid=key-last-used-${s.keyId}]`, { hasText: '2026-01-15 12:00 UTC' }).waitFor();

    await page.goto(`/#/orgs/${s.orgId}/usage`);
    await page.locator('[data-testid=usage-by-key]').waitFor();
    expect(await text('[data-testid=usage-total-requests]')).toBe('3');
    expect(await text('[data-testid=usage-total-errors]')).toBe('1');
    // The chart: a uPlot canvas with both series, summed over the month's days.
    await page.locator('[data-testid=usage-chart] .uplot canvas').waitFor();
    const legend = await page.locator('[data-testid=usage-chart] .u-legend').textContent();
    expect(legend).toContain('Requests');
    expect(legend).toContain('Errors (4xx + 5xx)');
    const summary = page.locator('[data-testid=usage-chart-summary]');
    expect(await summary.textContent()).toBe('3 requests and 1 errors over 31 days.');
    // By key and by endpoint.
    expect(await text(`[data-testid=usage-key-${s.keyId}-requests]`)).toBe('3');
    expect(await text(`[data-testid=usage-key-${s.keyId}-errors]`)).toBe('1');
    expect(await text('[data-testid="usage-endpoint-GET-/v1/things-requests"]')).toBe('1');
    expect(await text('[data-testid="usage-endpoint-POST-/v1/chat-requests"]')).toBe('2');
    expect(await text('[data-testid="usage-endpoint-POST-/v1/chat-errors"]')).toBe('1');
    expect(await page.locator('[data-testid=usage-by-endpoint] tr', { hasText: '/v1/chat' }).textContent()).toContain('$0.2500');
    // The quota gauge: 3 of 1000 in the billing period that started on the 5th.
    expect(await text('[data-testid=quota-text]')).toBe('3 of 1,000 requests used (0.3%), 997 remaining.');
    expect(await page.locator('#quota-meter').getAttribute('value')).toBe('3');
    expect(await text('[data-testid=quota-gauge] .hint')).toContain('2026-02-05 00:00 UTC');
    await screenshot(page, 'usage', { docs: true });

    // The billing period (Jan 5 to Feb 5) holds the same usage; the month picker moves to a month without any.
    await page.locator('#usage-period-billing').check();
    await page.locator('[data-testid=usage-period]', { hasText: 'billing period' }).waitFor();
    expect(await text('[data-testid=usage-period]')).toBe('2026-01-05 00:00 UTC – 2026-02-05 00:00 UTC (billing period)');
    expect(await text('[data-testid=usage-total-requests]')).toBe('3');
    await page.locator('#usage-period-month').check();
    await page.locator('#usage-month').fill('2025-12');
    await page.locator('[data-testid=usage-period]', { hasText: '2025-12-01' }).waitFor();
    expect(await text('[data-testid=usage-total-requests]')).toBe('0');
    expect(await text('[data-testid=usage-chart-summary]')).toBe('0 requests and 0 errors over 31 days.');
  });

  it('shows and resets the rate limit of a key on its page', async () => {
    await page.goto(`/#/keys/${s.keyId}`);
    await page.locator('[data-testid=rate-limit-remaining]').waitFor();
    expect(await text('[data-testid=rate-limit-limit]')).toBe('100 per minute (key)');
    expect(await text('[data-testid=rate-limit-remaining]')).toBe('97');
    await page.locator('#rate-limit-reset').click();
    await page.locator('[data-testid=rate-limit-reset-done]').waitFor();
    await page.locator('[data-testid=rate-limit-remaining]', { hasText: /^100$/ }).waitFor();
    expect((await h.root.getRateLimitStatus({ keyId: s.keyId })).remaining).toBe(100);
    await screenshot(page, 'key', { docs: true });
  });

  it('disables and enables a key', async () => {
    await page.locator('#key-toggle-enabled', { hasText: 'Disable key' }).click();
    await page.locator(`[data-testid=key-status-${s.keyId}]`, { hasText: 'disabled' }).waitFor();
    expect((await h.root.getKey({ id: s.keyId })).enabled).toBe(false);
    await page.locator('#key-toggle-enabled', { hasText: 'Enable key' }).click();
    await page.locator(`[data-testid=key-status-${s.keyId}]`, { hasText: 'active' }).waitFor();
    expect((await h.root.getKey({ id: s.keyId })).enabled).toBe(true);
  });

  it('rotates the key with a grace period: the new secret is shown once, the old key expires after the grace', async () => {
    await page.getByLabel('Grace period (seconds)').fill('3600');
    await page.getByLabel('Grace period (seconds)').press('Enter');
    await page.locator('[data-testid=secret-panel]').waitFor();
    const secret = await page.locator('[data-testid=secret-value]').inputValue();
    expect(secret).toMatch(/^kw_live_/);
    expect(secret).not.toBe(s.secret);
    const old = await h.root.getKey({ id: s.keyId });
    expect(old.replacedByKeyId).not.toBe('');
    expect(old.expiresAt).toEqual(new Date(h.clock.now().getTime() + 3600_000));
    await page.locator('#secret-close').click();
    // Closing leads to the new key's page; the secret is nowhere.
    await page.waitForURL(`${base}/#/keys/${old.replacedByKeyId}`);
    await page.locator('[data-testid=key-details]').waitFor();
    expect(await page.locator('[data-testid=secret-panel]').count()).toBe(0);
    expect(await domText(page)).not.toContain(secret);
    expect(JSON.stringify(await storageOf(page))).not.toContain(secret);
    const r = await envoy.check({ headers: { 'x-api-key': secret } });
    expect(r.http_response).toBe('ok_response');
  });

  it('revokes the key with a reason, and finds it in the audit log by kind, key and time', async () => {
    await page.goto(`/#/keys/${s.keyId}`);
    await page.locator(`[data-testid=key-status-${s.keyId}]`).waitFor();
    // A rotated key offers no second rotation.
    expect(await page.locator('[data-testid=key-rotate-form]').count()).toBe(0);
    await page.locator('#key-revoke-submit').click();
    await page.locator('#key-revoke-reason-error[role=alert]').waitFor();
    await page.getByLabel('Reason').fill('leaked in a ticket');
    await page.getByLabel('Reason').press('Enter');
    await page.locator(`[data-testid=key-status-${s.keyId}]`, { hasText: 'revoked' }).waitFor();
    expect(await text('[data-testid=key-revoked]')).toContain('leaked in a ticket');
    await screenshot(page, 'key-revoked');
    expect((await envoy.check({ headers: { 'x-api-key': s.secret } })).http_response).toBe('denied_response');

    await page.goto(`/#/orgs/${s.orgId}/audit`);
    await page.locator('[data-testid=audit-row][data-action="key.revoke"]').first().waitFor();
    await screenshot(page, 'audit', { docs: true });
    await page.getByLabel('Kind (action)').fill('key.revoke');
    await page.getByLabel('Key id').fill(s.keyId);
    await page.getByLabel('Key id').press('Enter');
    // The table says which filters it shows.
    await page.locator(`[data-testid=audit-table][data-filter-action="key.revoke"][data-filter-key="${s.keyId}"]`).waitFor();
    const rows = page.locator('[data-testid=audit-row]');
    expect(await rows.count()).toBe(1);
    expect(await rows.getAttribute('data-key')).toBe(s.keyId);
    expect(await rows.textContent()).toContain('leaked in a ticket');
    expect(await rows.textContent()).toContain('admin');
    await screenshot(page, 'audit-filtered');

    // The event happened at the manual clock's time (2026-01-15 12:00 UTC): a range after it finds nothing.
    await page.getByLabel('From (UTC, inclusive)').fill('2026-01-15T12:01');
    await page.locator('#audit-apply').click();
    await page.locator('[data-testid=audit-table] td', { hasText: 'No events match these filters.' }).waitFor();
    await page.getByLabel('From (UTC, inclusive)').fill('2026-01-15T11:59');
    await page.getByLabel('Until (UTC, exclusive)').fill('2026-01-15T12:01');
    await page.locator('#audit-apply').click();
    await page.locator('[data-testid=audit-table][data-filter-end="2026-01-15T12:01"]').waitFor();
    expect(await rows.count()).toBe(1);
  });

  it('pages through the audit log with its next-page token', async () => {
    for (let i = 0; i < 55; i++) await h.root.updateOrganization({ id: s.orgId, name: `Acme ${i}` });
    await page.locator('#audit-clear').click();
    await page.locator('[data-testid=audit-table][data-filter-action=""][data-filter-key=""]').waitFor();
    await page.getByLabel('Kind (action)').fill('organization.update');
    await page.getByLabel('Kind (action)').press('Enter');
    await page.locator('[data-testid=audit-table][data-filter-action="organization.update"]').waitFor();
    const rows = page.locator('[data-testid=audit-row][data-action="organization.update"]');
    await rows.nth(49).waitFor();
    expect(await page.locator('[data-testid=audit-row]').count()).toBe(50);
    await page.locator('#audit-more').click();
    await rows.nth(54).waitFor();
    expect(await page.locator('[data-testid=audit-row]').count()).toBe(55);
    expect(await page.locator('#audit-more').count()).toBe(0);
    // Newest first: the last update is the first row.
    expect(await rows.first().textContent()).toContain('organization.update');
  });

  it('refuses an API call without the CSRF token, even from the signed-in page', async () => {
    const without = await fetchFromPage(page, '/api/rpc/ListOrganizations', { headers: { 'content-type': 'application/json' }, body: {} });
    expect(without.status).toBe(403);
    expect(without.body.error?.code).toBe('csrf_token_invalid');
    const wrong = await fetchFromPage(page, '/api/rpc/ListOrganizations', {
      headers: { 'content-type': 'application/json', 'x-csrf-token': 'not-the-token' },
      body: {},
    });
    expect(wrong.status).toBe(403);
    expect(wrong.body.error?.code).toBe('csrf_token_invalid');
    // With the session's own token the same call works.
    const csrf = (await fetchFromPage(page, '/api/session', { method: 'GET' })).body.csrfToken as string;
    const right = await fetchFromPage(page, '/api/rpc/ListOrganizations', {
      headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
      body: {},
    });
    expect(right.status).toBe(200);
  });

  it('edits the limits, deactivates and deletes the organization with a reason and a confirmation', async () => {
    await page.goto(`/#/orgs/${s.orgId}`);
    // Edit the limits first.
    await page.getByLabel('Rate limit per minute').fill('30');
    await page.getByLabel('Monthly quota (requests)').fill('0');
    await page.getByLabel('Billing anchor day').fill('10');
    await page.getByLabel('Billing anchor day').press('Enter');
    await page.locator('[data-testid=org-saved]').waitFor();
    expect(await h.root.getOrganization({ id: s.orgId })).toMatchObject({ rateLimitPerMinute: 30, monthlyQuota: 0, billingAnchorDay: 10 });
    // The page reloads the organization after saving: the new quota shows once that answer is in.
    await page.locator('[data-testid=org-details] dd', { hasText: 'unlimited' }).waitFor();

    await page.locator('#org-toggle-active', { hasText: 'Deactivate organization' }).click();
    await page.locator('[data-testid=org-state]', { hasText: 'inactive' }).waitFor();
    expect((await h.root.getOrganization({ id: s.orgId })).active).toBe(false);

    await page.getByLabel('Reason').fill('customer left');
    await page.locator('#org-delete-submit').click();
    await page.locator('#org-delete-error[role=alert]').waitFor();
    expect((await h.root.getOrganization({ id: s.orgId })).deletedAt).toBeUndefined();
    await page.locator('#org-delete-confirm').check();
    await page.locator('#org-delete-submit').click();
    await page.locator('[data-testid=org-state]', { hasText: 'deleted' }).waitFor();
    expect((await h.root.getOrganization({ id: s.orgId })).deletedAt).toBeDefined();

    // Hidden from the list unless asked for.
    await page.goto('/#/orgs');
    await page.locator('[data-testid=orgs-table]').waitFor();
    expect(await page.locator(`[data-testid=org-row-${s.orgId}]`).count()).toBe(0);
    await page.getByLabel('Show deleted organizations').check();
    await page.locator(`[data-testid=org-row-${s.orgId}]`).waitFor();
    expect(await text(`[data-testid=org-row-${s.orgId}] .badge`)).toBe('deleted');
  });

  it('goes back to sign-in when the session has expired, and signs out', async () => {
    h.clock.advance(31 * 60 * 1000);
    // A click, not uncheck(): uncheck() waits to see the box unchecked, and the page may
    // already have gone to sign-in (the point of this test) when it looks.
    await page.getByLabel('Show deleted organizations').click();
    await page.locator('[data-testid=signin-notice]').waitFor();
    expect(await text('[data-testid=signin-notice]')).toMatch(/session has expired/);
    await screenshot(page, 'session-expired');

    await page.getByLabel('Admin token or admin-scoped API key').fill(TEST_ADMIN_TOKEN);
    await page.locator('#signin-submit').click();
    await page.locator('[data-testid=orgs-table]').waitFor();
    await page.locator('#signout').click();
    await page.locator('[data-testid=signin-notice]', { hasText: 'signed out' }).waitFor();
    expect((await fetchFromPage(page, '/api/session', { method: 'GET' })).status).toBe(401);
  });
});
