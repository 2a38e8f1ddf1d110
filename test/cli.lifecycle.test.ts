/**
 * The lifecycle verbs of the CLI (in process, runCli) against a real server on each
 * database: `keyward key disable|enable KEY_ID`, `keyward org delete ORG --reason ...`
 * and `keyward org list --include-deleted`, in --json and text, and the error of a
 * change to a deleted organization.
 */
import { DIALECTS } from './support/databases';
import { startHarness, TEST_ADMIN_TOKEN, type Harness } from './support/harness';
import { runCli } from '../src/cli/main';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe.each(DIALECTS)('keyward key disable|enable, org delete on %s', (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dialect);
  });
  afterAll(async () => h.stop());

  async function run(...argv: string[]): Promise<Run> {
    let stdout = '';
    let stderr = '';
    const code = await runCli(argv, {
      stdout: { write: (s: string) => (stdout += s) },
      stderr: { write: (s: string) => (stderr += s) },
      env: { KEYWARD_ADMIN_TOKEN: TEST_ADMIN_TOKEN, KEYWARD_ADMIN_URL: `127.0.0.1:${h.app.adminPort}` },
    });
    return { code, stdout, stderr };
  }
  const json = async (...argv: string[]) => {
    const r = await run(...argv, '--json');
    expect([r.code, r.stderr]).toEqual([0, '']);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  };

  it('key disable and enable: --json shows enabled, status and disabledAt; text shows the status', async () => {
    const org = await h.root.createOrganization({ name: 'Acme' });
    const { key } = await h.root.createKey({ organizationId: org.id, name: 'k' });
    const disabled = await json('key', 'disable', key!.id);
    expect(disabled).toMatchObject({ id: key!.id, enabled: false, status: 'disabled', disabledAt: h.clock.now().toISOString() });
    const text = await run('key', 'enable', key!.id);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^status: +active$/m);
    expect(await json('key', 'get', key!.id)).toMatchObject({ enabled: true, status: 'active', disabledAt: null });
    const actions = (await h.root.listAuditEvents({ keyId: key!.id, pageSize: 10 })).events.map((e) => e.action);
    expect(actions).toEqual(['key.enable', 'key.disable', 'key.create']);
  });

  it('org delete --reason: --json shows deletedAt and revokedKeys; org list hides it unless --include-deleted', async () => {
    const org = await h.root.createOrganization({ name: 'Leaving' });
    await h.root.createKey({ organizationId: org.id, name: 'a' });
    await h.root.createKey({ organizationId: org.id, name: 'b' });
    const missingReason = await run('org', 'delete', org.id);
    expect(missingReason.code).toBe(2);
    expect(missingReason.stderr).toContain('--reason');

    const deleted = await json('org', 'delete', org.id, '--reason', 'contract ended');
    expect(deleted).toMatchObject({ id: org.id, active: false, deletedAt: h.clock.now().toISOString(), revokedKeys: 2 });
    const ids = async (...extra: string[]) =>
      ((await json('org', 'list', ...extra)).organizations as { id: string; deletedAt: string | null }[]).map((o) => o.id);
    expect(await ids()).not.toContain(org.id);
    expect(await ids('--include-deleted')).toContain(org.id);
    expect(await json('org', 'get', org.id)).toMatchObject({ deletedAt: h.clock.now().toISOString() });

    const other = await h.root.createOrganization({ name: 'Text' });
    await h.root.createKey({ organizationId: other.id, name: 'k' });
    const text = await run('org', 'delete', other.id, '--reason', 'text');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^deleted at: +\d{4}-/m);
    expect(text.stdout).toContain('\nRevoked 1 key(s) of the organization.\n');

    const again = await run('org', 'delete', org.id, '--reason', 'again');
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^error: organization_deleted: /);
  });
});
