/**
 * Two `keyward serve` processes on one host, started at the same moment:
 *  - on one fresh SQLite file and one usage-journal directory, both come up (one of
 *    them applies the migrations, the other waits for it), both are ready and answer
 *    Checks, and each writes its own journal subdirectory;
 *  - a journal a dead process left in that directory is replayed by exactly one of
 *    them, and its usage is stored once.
 */
import { cellsOf } from '../src/usage/cells';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServerProcess, type ServerProcess } from './support/server-process';
import { adminClient, type AdminClient } from './support/harness';
import { EnvoyClient } from './support/envoy-client';
import { sqliteMigrations } from '../src/store/migrations';
import { openOrm } from '../src/store/orm';
import type { EntityManager } from '@mikro-orm/knex';
import { UsageJournal } from '../src/usage/journal';
import type { UsageEvent } from '../src/usage/types';

const TOKEN = `replica-admin-token-${randomBytes(8).toString('hex')}`;
const HASH_SECRET = randomBytes(32).toString('hex');

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function metric(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line ? Number(line.split(' ').pop()) : NaN;
}

async function allowed(port: number, key: string): Promise<boolean> {
  const envoy = new EnvoyClient(port);
  try {
    return (await envoy.check({ headers: { 'x-api-key': key }, path: '/v1/x', method: 'GET' })).http_response === 'ok_response';
  } finally {
    envoy.close();
  }
}

describe('two processes on one host', () => {
  let dir: string;
  const servers: ServerProcess[] = [];
  const clients: AdminClient[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'keyward-replicas-'));
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
    for (const s of servers.splice(0)) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  const env = () => ({
    KEYWARD_DATABASE_URL: `sqlite:${join(dir, 'kw.db')}`,
    KEYWARD_USAGE_JOURNAL_DIR: join(dir, 'journal'),
    KEYWARD_HASH_SECRET: HASH_SECRET,
    KEYWARD_ADMIN_TOKEN: TOKEN,
    KEYWARD_USAGE_FLUSH_SECONDS: '1',
  });
  /** Starts two processes at once; both must come up. */
  const startTwo = async (): Promise<[ServerProcess, ServerProcess]> => {
    const started = await Promise.allSettled([startServerProcess(env()), startServerProcess(env())]);
    for (const s of started) if (s.status === 'fulfilled') servers.push(s.value);
    expect(started.map((s) => (s.status === 'rejected' ? String(s.reason) : 'up'))).toEqual(['up', 'up']);
    return servers.slice(-2) as [ServerProcess, ServerProcess];
  };
  const admin = (s: ServerProcess) => {
    const c = adminClient(s.adminPort, TOKEN);
    clients.push(c);
    return c;
  };

  it('both come up on one fresh SQLite file and one journal directory, each with its own journal', async () => {
    const [a, b] = await startTwo();
    for (const s of [a, b]) expect((await fetch(`http://127.0.0.1:${s.httpPort}/readyz`)).status).toBe(200);
    // One applied the migrations; the other found nothing left to do.
    expect([a, b].filter((s) => s.stdout().includes('"migrations applied"'))).toHaveLength(1);
    const orm = await openOrm({ kind: 'sqlite', path: join(dir, 'kw.db'), url: '' });
    try {
      const knex = (orm.em as unknown as EntityManager).getKnex();
      const rows = await knex<{ name: string }>('keyward_migrations').select('name').orderBy('id');
      expect(rows.map((r) => r.name)).toEqual(sqliteMigrations.map((m) => m.name));
    } finally {
      await orm.close(true);
    }

    const org = await admin(a).createOrganization({ name: 'replicas', rateLimitPerMinute: 1_000_000, monthlyQuota: 0 });
    const { secret } = await admin(b).createKey({ organizationId: org.id, name: 'k' });
    expect(await allowed(a.authzPort, secret)).toBe(true);
    expect(await allowed(b.authzPort, secret)).toBe(true);

    const subdirs = readdirSync(join(dir, 'journal')).sort();
    expect(subdirs).toHaveLength(2);
    for (const s of [a, b]) expect(subdirs.filter((n) => n.startsWith(`process-${s.proc.pid}-`))).toHaveLength(1);
  }, 60_000);

  it('a journal left by a dead process is replayed by exactly one of two processes starting together', async () => {
    // A first process makes the organization and key, then goes away.
    const first = await startServerProcess(env());
    servers.push(first);
    const org = await admin(first).createOrganization({ name: 'left', rateLimitPerMinute: 1_000_000, monthlyQuota: 0 });
    const key = await admin(first).createKey({ organizationId: org.id, name: 'k' });
    expect(await first.stop()).toBe(0);

    // What a process that died during a store outage leaves: its subdirectory, 7 events.
    const dead = spawn(process.execPath, ['-e', '']);
    await new Promise((r) => dead.once('exit', r));
    const left = join(dir, 'journal', `process-${dead.pid}-0badc0de`);
    mkdirSync(left, { recursive: true });
    const journal = UsageJournal.openDir({ dir: left, maxBytes: 1024 * 1024 });
    const events: UsageEvent[] = Array.from({ length: 7 }, (_, i) => ({
      at: Date.now(),
      organizationId: org.id,
      keyId: key.key!.id,
      requestId: `left-${i}`,
      endpoint: '/v1/x',
      method: 'GET',
      requests: 1,
      source: 'check',
    }));
    await journal.append('left-batch-1', { cells: cellsOf(events), events: [] });
    journal.close();

    const [a, b] = await startTwo();
    const replayed = async () =>
      (await metric(a.httpPort!, 'keyward_usage_journal_replayed_events_total')) +
      (await metric(b.httpPort!, 'keyward_usage_journal_replayed_events_total'));
    await until('the left journal replayed', async () => (await replayed()) === 7);
    const month = new Date().toISOString().slice(0, 7);
    expect((await admin(a).getUsageStats({ organizationId: org.id, month })).totals?.requests).toBe(7);
    // Exactly one of them took it over; the other's journal never held it.
    const byProcess = [
      await metric(a.httpPort!, 'keyward_usage_journal_replayed_events_total'),
      await metric(b.httpPort!, 'keyward_usage_journal_replayed_events_total'),
    ].sort();
    expect(byProcess).toEqual([0, 7]);
    expect(readdirSync(join(dir, 'journal')).filter((n) => n.includes('0badc0de'))).toEqual([]);
  }, 90_000);
});
