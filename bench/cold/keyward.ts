/** Starting the measured keyward and the load generators. */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { startServerProcess, type ServerProcess } from '../../test/support/server-process';
import { ADMIN_TOKEN, DB_NAME, GENERATORS, INFLIGHT, KEYS, NODE_ARGS, ROOT, SECONDS } from './settings';
import type { FromGen, ToGen } from './generator';
import { track } from './processes';
import { buildInfo, dbUrl, fmt } from './system';

/**
 * KEYWARD_* variables set for the bench are passed on to keyward (for A/B runs, e.g.
 * KEYWARD_LAST_USED_FLUSH_SECONDS), except the database, the secrets and the listen
 * addresses, which the bench sets.
 */
export const PASSED_ENV = Object.fromEntries(
  Object.entries(process.env).filter(
    (e): e is [string, string] =>
      e[0].startsWith('KEYWARD_') &&
      e[1] !== undefined &&
      !/^KEYWARD_(DATABASE_URL|HASH_SECRET|ADMIN_TOKEN|ADMIN_LISTEN|AUTHZ_LISTEN)(_FILE)?$/.test(e[0]),
  ),
);

export const CAP = String(Math.max(1_100_000, Math.ceil(KEYS * 1.1)));
/** keyward's settings, but for the database and the secrets. */
export const KEYWARD_SETTINGS: Record<string, string> = {
  KEYWARD_LOG_LEVEL: 'info',
  KEYWARD_CACHE_MAX_ENTRIES: CAP,
  KEYWARD_RATE_LIMIT_MAX_KEYS: CAP,
  // Positive entries stay fresh for the whole bench, so the re-check after the load can
  // show from the database statistics that they are still cached. (An expired entry
  // stays in memory until evicted anyway: the memory figure does not depend on it.)
  KEYWARD_CACHE_TTL_SECONDS: '86400',
  // The store path's own capacity is measured: no bound on lookups per second.
  KEYWARD_CACHE_MISS_QUERIES_PER_SECOND: '0',
  ...PASSED_ENV,
};

export async function startKeyward(hashSecretHex: string, cpuProf?: string): Promise<ServerProcess> {
  return startServerProcess(
    {
      ...KEYWARD_SETTINGS,
      KEYWARD_DATABASE_URL: dbUrl(DB_NAME),
      KEYWARD_HASH_SECRET: hashSecretHex,
      KEYWARD_ADMIN_TOKEN: ADMIN_TOKEN,
    },
    ROOT,
    [...(cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${cpuProf}`] : []), ...NODE_ARGS],
  );
}

/** Forks a load generator and hands it its keys; resolves once its requests are built. */
export async function startGenerator(
  keys: Buffer,
  keyLen: number,
): Promise<{ proc: ChildProcess; count: number; onMessage: (f: (m: FromGen) => void) => void }> {
  const proc = track(
    fork(join(__dirname, 'generator.ts'), [], {
      execArgv: ['--import', 'tsx'],
      env: { ...process.env, BENCH_COLD_ROLE: 'loadgen' },
      serialization: 'advanced',
      cwd: ROOT,
    }),
  );
  const listeners: ((m: FromGen) => void)[] = [];
  proc.on('message', (m: FromGen) => {
    for (const l of listeners) l(m);
  });
  const ready = new Promise<number>((resolve, reject) => {
    listeners.push((m) => m.type === 'ready' && resolve(m.count));
    proc.on('exit', (code) => reject(new Error(`load generator exited (${code})`)));
  });
  proc.send({ type: 'keys', keys, keyLen } satisfies ToGen);
  const count = await ready;
  return { proc, count, onMessage: (f) => listeners.push(f) };
}

/** The machine, the build, the knobs and keyward's settings, before the run. */
export function printSetup(pgVersion: string): void {
  const cpuModel = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? '?';
  console.log('# keyward cold-path benchmark (PostgreSQL)');
  console.log(
    `machine: ${cpus().length} CPUs, ${cpuModel}; node ${process.version}; PostgreSQL ${pgVersion}; date ${new Date().toISOString()}`,
  );
  console.log(`keyward under test: ${buildInfo()}`);
  console.log(
    `keys ${fmt(KEYS)}, time limit ${SECONDS > 0 ? `${SECONDS}s` : 'none'}, ${INFLIGHT} in flight over ${GENERATORS} generator(s); keyward, PostgreSQL and the generators share the CPUs`,
  );
  const settings = Object.entries(KEYWARD_SETTINGS)
    .map(([k, v]) => `${k}=${/URL|TOKEN|SECRET|PASSWORD/.test(k) ? '<set>' : v}`)
    .join(' ');
  console.log(`keyward settings: ${settings}${NODE_ARGS.length ? `; node ${NODE_ARGS.join(' ')}` : ''}`);
  console.log(
    'load: a Node load generator (gRPC framed by hand over node:http2, pre-built request bytes), since h2load repeats one request body and each Check here needs a new key',
  );
}
