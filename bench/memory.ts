/**
 * Memory with 1,000,000 keys cached and 1,000,000 rate-limit windows live (issue 13 §1:
 * within 600 MB), in each KEYWARD_RATE_LIMIT_MODE, on SQLite (no PostgreSQL needed).
 *
 *  1. keyward serve on a fresh SQLite file (migrations), 10 organizations through KeyAdmin
 *     (rate limit RATE_LIMIT a minute, so every Check consults the limiter) and one
 *     template key; keyward stopped.
 *  2. 1,000,000 keys straight into api_keys (better-sqlite3, copies of the template row
 *     with their own id, organization, name, prefix, hint and keyed hash).
 *  3. Per mode (BENCH_MEMORY_MODES, default "strict approximate"): bench/memory-driver.cjs,
 *     keyward from dist/ as `keyward serve` starts it, its ports open, checks every key
 *     in process from request bytes on (decoder, hash, cache, store lookup, limiter,
 *     quota, usage, last use): once from SQLite, then again cached, starting just after a
 *     minute begins so that no window goes idle; then RSS and heap once the usage and
 *     last-use writes are done, and for 30 s at rest (bench/cold/in-process.ts).
 * Knobs: BENCH_MEMORY_KEYS (1,000,000), BENCH_MEMORY_MODES, BENCH_KEYWARD_NODE_ARGS (node flags for keyward).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { CreateOrganizationRequest, Environment, KeyAdminClient } from '../src/gen/keyward/admin/v1/key_admin';
import { LIMITS } from '../src/admin/validate';
import { displayParts, generateKey } from '../src/keys/format';
import { createHasher } from '../src/keys/hash';
import { newId } from '../src/util/ids';
import { startServerProcess } from '../test/support/server-process';
import { inProcessMemory, type InProcessResult } from './cold/in-process';
import { cleanup as coldCleanup, state, track } from './cold/processes';
import { ADMIN_TOKEN, RATE_LIMIT } from './cold/settings';
import { fmt, unary } from './cold/system';
import { sh } from './run/helpers';
import { table } from './support/table';
import { runMain } from './support/run-main';

/** better-sqlite3 (a dependency without type declarations), as far as this file uses it. */
interface Statement {
  get(...params: unknown[]): unknown;
  run(...params: unknown[]): unknown;
}
interface SqliteDb {
  prepare(sql: string): Statement;
  transaction(f: () => void): () => void;
  pragma(source: string): unknown;
  close(): void;
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Database = require('better-sqlite3') as new (file: string) => SqliteDb;

const KEYS = Number(process.env.BENCH_MEMORY_KEYS ?? 1_000_000);
const MODES = (process.env.BENCH_MEMORY_MODES ?? 'strict approximate').split(' ').filter(Boolean);
const TARGET_MB = 600;
const tmp = mkdtempSync(join(tmpdir(), 'keyward-bench-memory-'));
const cap = String(Math.max(1_100_000, Math.ceil(KEYS * 1.1)));

function cleanup(): void {
  coldCleanup();
  rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
  process.on(s, () => {
    cleanup();
    process.exit(130);
  });

/** Steps 1 and 2: the SQLite file with the organizations and KEYS keys; the secrets, packed. */
async function prepare(dbFile: string, secretHex: string): Promise<{ keys: Buffer; keyLen: number }> {
  state.keyward = await startServerProcess(
    {
      KEYWARD_DATABASE_URL: `sqlite:${dbFile}`,
      KEYWARD_HASH_SECRET: secretHex,
      KEYWARD_ADMIN_TOKEN: ADMIN_TOKEN,
      KEYWARD_LOG_LEVEL: 'info',
      KEYWARD_USAGE_JOURNAL_DIR: join(tmp, 'journal-setup'),
      HOME: tmp,
    },
    tmp,
  );
  track(state.keyward.proc);
  const admin = new KeyAdminClient(`127.0.0.1:${state.keyward.adminPort}`, credentials.createInsecure());
  // As few organizations as KeyAdmin's max_keys allows (the inserts bypass the check).
  const orgs = Math.ceil(KEYS / LIMITS.maxKeys.max);
  const perOrg = Math.ceil(KEYS / orgs);
  const orgIds: string[] = [];
  for (let o = 0; o < orgs; o++) {
    const org = await unary(
      admin.createOrganization.bind(admin),
      CreateOrganizationRequest.fromPartial({
        name: `memory-${o}`,
        maxKeys: LIMITS.maxKeys.max,
        rateLimitPerMinute: RATE_LIMIT,
        monthlyQuota: 0,
      }),
    );
    orgIds.push(org.id);
  }
  const template = await unary(admin.createKey.bind(admin), {
    requestId: '',
    organizationId: orgIds[0]!,
    name: 'memory-template',
    environment: Environment.ENVIRONMENT_LIVE,
    scopes: [],
    metadata: {},
  });
  admin.close();
  await state.keyward.stop('SIGTERM');
  state.keyward = undefined;

  const hasher = createHasher(Buffer.from(secretHex, 'hex'));
  const keyLen = generateKey('live').length;
  const keys = Buffer.alloc(KEYS * keyLen); // every secret, packed; never printed
  const db = new Database(dbFile);
  const row = db.prepare('select * from api_keys where id = ?').get(template.key!.id) as Record<string, unknown>;
  const mine = ['id', 'organization_id', 'name', 'prefix', 'hint', 'key_hash'];
  const rest = Object.keys(row).filter((c) => !mine.includes(c));
  const insert = db.prepare(
    `insert into api_keys (${[...mine, ...rest].join(', ')}) values (${[...mine, ...rest].map(() => '?').join(', ')})`,
  );
  const restValues = rest.map((c) => row[c]);
  const t = Date.now();
  db.transaction(() => {
    for (let i = 0; i < KEYS; i++) {
      const key = generateKey('live');
      if (key.length !== keyLen) throw new Error('key length varies');
      keys.write(key, i * keyLen, 'latin1');
      const { prefix, hint } = displayParts(key);
      insert.run(newId('key', Date.now()), orgIds[Math.floor(i / perOrg)]!, `memory-${i}`, prefix, hint, hasher.hash(key), ...restValues);
    }
    db.prepare('delete from api_keys where id = ?').run(template.key!.id);
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  console.log(
    `${orgs} organizations through KeyAdmin (rate limit ${RATE_LIMIT}/min, no quota); ${fmt(KEYS)} keys inserted with SQL in ${((Date.now() - t) / 1000).toFixed(1)} s; SQLite file ${(statSync(dbFile).size / 1048576).toFixed(0)} MB`,
  );
  return { keys, keyLen };
}

async function main(): Promise<void> {
  const cpuModel = cpus()[0]?.model ?? '?';
  console.log(
    `# memory: ${fmt(KEYS)} keys cached and ${fmt(KEYS)} rate-limit windows live, per rate-limit mode (target ${TARGET_MB} MB RSS)`,
  );
  console.log(`machine: ${sh('nproc', [])} CPUs, ${cpuModel}; node ${process.version}; date ${new Date().toISOString()}`);
  console.log(
    `keyward settings: SQLite, KEYWARD_CACHE_MAX_ENTRIES and KEYWARD_RATE_LIMIT_MAX_KEYS ${cap}, cache TTL 1 day, no lookup budget`,
  );
  const t0 = Date.now();
  const dbFile = join(tmp, 'kw.db');
  const secretHex = randomBytes(32).toString('hex');
  const { keys, keyLen } = await prepare(dbFile, secretHex);

  const results: { mode: string; r: InProcessResult }[] = [];
  for (const mode of MODES) {
    console.log('');
    console.log(`## KEYWARD_RATE_LIMIT_MODE=${mode}`);
    const r = await inProcessMemory(secretHex, keys, keyLen, {
      KEYWARD_DATABASE_URL: `sqlite:${dbFile}`,
      KEYWARD_RATE_LIMIT_MODE: mode,
      KEYWARD_CACHE_MAX_ENTRIES: cap,
      KEYWARD_RATE_LIMIT_MAX_KEYS: cap,
      KEYWARD_CACHE_TTL_SECONDS: '86400',
      KEYWARD_CACHE_MISS_QUERIES_PER_SECOND: '0',
      KEYWARD_USAGE_JOURNAL_DIR: join(tmp, `journal-${mode}`),
      HOME: tmp,
    });
    if (r.pass1.other !== 'none' || r.pass2.other !== 'none')
      console.log(`  WARNING not every Check was allowed: ${r.pass1.other}; ${r.pass2.other}`);
    results.push({ mode, r });
  }

  const mb = (x: number) => `${x.toFixed(0)} MB`;
  console.log('');
  console.log(`## RSS and V8 heap with ${fmt(KEYS)} keys cached and every window live (SQLite, in-process Checks)`);
  console.log(
    table(
      [
        'mode',
        'keys cached',
        'windows live',
        'RSS after the writes',
        'RSS after 30 s at rest',
        'heap used / total',
        'external',
        'cached pass',
        'target',
      ],
      results.map(({ mode, r }) => [
        mode,
        fmt(r.cacheSize),
        fmt(r.trackedWindows),
        mb(r.rssLoadEndMb),
        mb(r.rssMb),
        `${r.heapUsedMb.toFixed(0)} / ${r.heapTotalMb.toFixed(0)} MB`,
        mb(r.externalMb),
        `${r.pass2.seconds.toFixed(1)} s`,
        Math.max(r.rssLoadEndMb, r.rssMb) <= TARGET_MB ? `≤ ${TARGET_MB} MB: met` : `≤ ${TARGET_MB} MB: NOT met`,
      ]),
    ),
  );
  const notLive = results.filter(({ r }) => r.trackedWindows < KEYS || r.cacheSize < KEYS);
  if (notLive.length) console.log(`WARNING fewer than ${fmt(KEYS)} keys or windows held in: ${notLive.map((x) => x.mode).join(', ')}`);
  console.log(
    `BENCH_RESULT ${JSON.stringify({
      memory: Object.fromEntries(
        results.map(({ mode, r }) => [
          mode,
          {
            keysCached: r.cacheSize,
            windowsLive: r.trackedWindows,
            rssLoadEndMb: +r.rssLoadEndMb.toFixed(1),
            rssMb: +r.rssMb.toFixed(1),
            heapUsedMb: +r.heapUsedMb.toFixed(1),
            heapTotalMb: +r.heapTotalMb.toFixed(1),
            externalMb: +r.externalMb.toFixed(1),
            pass1Seconds: +r.pass1.seconds.toFixed(1),
            pass2Seconds: +r.pass2.seconds.toFixed(1),
          },
        ]),
      ),
    })}`,
  );
  console.log(`total ${((Date.now() - t0) / 1000).toFixed(0)}s`);
}

runMain(
  main,
  () => undefined,
  () => state.keyward?.stderr(),
);
