/**
 * Webhooks through the CLI against a real `keyward serve` (the built dist/, SQLite,
 * KEYWARD_WEBHOOK_ALLOW_INSECURE=true, its own timers): `webhook create --json` prints
 * the id and the secret; a key created afterwards reaches a real receiver on
 * 127.0.0.1, signed with that secret; `webhook deliveries` shows the attempt;
 * `list`, `update` and `delete` work and never print the secret; /metrics counts it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, startServerProcess, type ServerProcess } from './support/server-process';
import { signatureValid, startReceiver, type Receiver } from './support/webhook-receiver';

const TOKEN = 'cli-webhooks-admin-token-0123456789';

describe('keyward webhook commands against a running server', () => {
  let dir: string;
  let s: ServerProcess;
  let rx: Receiver;
  const cli = (args: string[]) =>
    spawnSync(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH, KEYWARD_ADMIN_URL: `127.0.0.1:${s.adminPort}`, KEYWARD_ADMIN_TOKEN: TOKEN },
      encoding: 'utf8',
      timeout: 20000,
    });
  const json = <T = Record<string, unknown>>(args: string[]): T => {
    const r = cli([...args, '--json']);
    if (r.status !== 0) throw new Error(`keyward ${args.join(' ')} failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keyward-cli-webhooks-'));
    rx = await startReceiver();
    s = await startServerProcess(
      {
        KEYWARD_DATABASE_URL: `sqlite:${join(dir, 'keyward.db')}`,
        KEYWARD_ADMIN_TOKEN: TOKEN,
        KEYWARD_WEBHOOK_ALLOW_INSECURE: 'true',
        KEYWARD_LOG_LEVEL: 'info',
      },
      dir,
    );
  });
  afterAll(async () => {
    await s.stop();
    await rx.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates an endpoint, delivers a signed event to it, and shows the attempt', async () => {
    const org = json<{ id: string }>(['org', 'create', '--name', 'Hooks']);
    const created = json<{ id: string; secret: string; events: string[] }>([
      'webhook',
      'create',
      '--org',
      org.id,
      '--url',
      rx.url,
      '--events',
      'key.created, key.revoked',
    ]);
    expect(created.id).toMatch(/^whk_/);
    expect(created.secret).toMatch(/^whsec_/);
    expect(created.events).toEqual(['key.created', 'key.revoked']);

    const key = json<{ id: string }>(['key', 'create', '--org', org.id, '--name', 'k']);
    // The server's own `webhooks` task (every second) sends it.
    const deadline = Date.now() + 15_000;
    while (rx.requests.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(rx.requests).toHaveLength(1);
    const req = rx.requests[0]!;
    expect(signatureValid(created.secret, req.body, req.headers['keyward-signature'], Math.floor(Date.now() / 1000))).toBe(true);
    expect(JSON.parse(req.body)).toMatchObject({ kind: 'key.created', organization_id: org.id, key_id: key.id });

    const { deliveries } = json<{ deliveries: { status: string; attempts: { statusCode: number; durationMs: number }[] }[] }>([
      'webhook',
      'deliveries',
      created.id,
    ]);
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]!.status).toBe('delivered');
    expect(deliveries[0]!.attempts[0]!.statusCode).toBe(200);
    const metrics = await (await fetch(`http://127.0.0.1:${s.httpPort}/metrics`)).text();
    expect(metrics).toMatch(/^keyward_webhook_delivered_total 1$/m);
    expect(metrics).toMatch(/^keyward_webhook_attempts_total 1$/m);
    const text = cli(['webhook', 'deliveries', created.id]);
    expect(text.stdout).toMatch(/delivered\s+1\s+200/);

    const list = cli(['webhook', 'list', '--org', org.id, '--json']);
    expect(list.stdout).toContain(created.id);
    expect(list.stdout).not.toContain('whsec_');
    expect(json<{ active: boolean }>(['webhook', 'update', created.id, '--active', 'false']).active).toBe(false);
    expect(json<{ deleted: boolean }>(['webhook', 'delete', created.id]).deleted).toBe(true);
    expect(json<{ webhooks: unknown[] }>(['webhook', 'list', '--org', org.id]).webhooks).toEqual([]);

    const bad = cli(['webhook', 'create', '--org', org.id, '--url', rx.url, '--events', 'key.created,nope']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/events/);
    expect(s.stdout() + s.stderr()).not.toContain(created.secret);
  });
});
