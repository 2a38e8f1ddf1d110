/** The in-process memory run (bench/memory-driver.cjs) and the limiter's bytes per window. */
import { fork, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ADMIN_TOKEN, DB_NAME, INPROC_CHUNK, INPROC_INFLIGHT, INPROC_REST_MS, ROOT } from './settings';
import { requestTemplate } from './requests';
import { track } from './processes';
import { dbUrl, fmt } from './system';
import { KEYWARD_SETTINGS } from './keyward';

export interface InProcessResult {
  pass1: { seconds: number; allowed: number; other: string };
  pass2: { seconds: number; allowed: number; other: string };
  /** RSS once the buffered writes were done (the end of the load). */
  rssLoadEndMb: number;
  /** RSS after INPROC_REST_MS at rest. */
  rssMb: number;
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
  cacheSize: number;
  trackedWindows: number;
}

/**
 * Starts keyward in bench/memory-driver.cjs (the real app from dist/, an empty cache)
 * and checks every key twice inside it: first from the store, then cached, the second
 * pass fast enough (all keys within seconds) that every rate-limit window is live.
 * Then reads its RSS. `env` overrides keyward's settings (bench/memory.ts: SQLite, the
 * rate-limit mode, the journal directory).
 */
export async function inProcessMemory(
  hashSecretHex: string,
  keys: Buffer,
  keyLen: number,
  env: Record<string, string> = {},
): Promise<InProcessResult> {
  const driver = track(
    fork(join(__dirname, '..', 'memory-driver.cjs'), [], {
      cwd: ROOT,
      // BENCH_KEYWARD_NODE_ARGS: node flags for keyward, as in bench/run.ts (e.g. --max-semi-space-size=64).
      execArgv: (process.env.BENCH_KEYWARD_NODE_ARGS ?? '').split(' ').filter(Boolean),
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      env: {
        PATH: process.env.PATH ?? '',
        ...(process.env.BENCH_HEAP_SNAPSHOT && { BENCH_HEAP_SNAPSHOT: process.env.BENCH_HEAP_SNAPSHOT }),
        KEYWARD_ADMIN_LISTEN: '127.0.0.1:0',
        KEYWARD_AUTHZ_LISTEN: '127.0.0.1:0',
        KEYWARD_HTTP_LISTEN: '127.0.0.1:0',
        KEYWARD_CONSOLE_LISTEN: '127.0.0.1:0',
        ...KEYWARD_SETTINGS,
        KEYWARD_DATABASE_URL: dbUrl(DB_NAME),
        KEYWARD_HASH_SECRET: hashSecretHex,
        KEYWARD_ADMIN_TOKEN: ADMIN_TOKEN,
        ...env,
      },
    }),
  );
  type FromDriver =
    | { type: 'ready'; pid: number }
    | { type: 'chunk-done'; allowed: number; denied: Record<string, number>; errors: number }
    | {
        type: 'measured';
        series: { atMs: number; rssKb: number; heapUsed: number; heapTotal: number }[];
        rssKb: number;
        heapUsed: number;
        heapTotal: number;
        external: number;
        cacheSize: number;
        trackedWindows: number;
      };
  let waiter: ((m: FromDriver) => void) | undefined;
  driver.on('message', (m: FromDriver) => waiter?.(m));
  const exited = new Promise<never>((_, reject) => driver.on('exit', (code) => reject(new Error(`memory driver exited (${code})`))));
  const next = <T extends FromDriver['type']>(type: T) =>
    Promise.race([
      exited,
      new Promise<Extract<FromDriver, { type: T }>>(
        (resolve) => (waiter = (m) => m.type === type && resolve(m as Extract<FromDriver, { type: T }>)),
      ),
    ]);
  const ready = await next('ready');
  const { bytes: template, offset } = requestTemplate(keyLen);
  const count = keys.length / keyLen;
  const pass = async (name: string, inflight: number) => {
    const t = Date.now();
    let allowed = 0;
    const other: Record<string, number> = {};
    for (let from = 0; from < count; from += INPROC_CHUNK) {
      const chunk = keys.subarray(from * keyLen, Math.min(count, from + INPROC_CHUNK) * keyLen);
      driver.send({ type: 'chunk', keys: new Uint8Array(chunk), keyLen, template: new Uint8Array(template), offset, inflight });
      const r = await next('chunk-done');
      allowed += r.allowed;
      for (const [k, v] of Object.entries(r.denied)) other[k] = (other[k] ?? 0) + v;
      if (r.errors > 0) other.errors = (other.errors ?? 0) + r.errors;
      if (from % 100_000 === 0) process.stdout.write('.');
    }
    const seconds = (Date.now() - t) / 1000;
    console.log(` ${name}: ${fmt(count)} Checks in ${seconds.toFixed(1)}s (${fmt(count / seconds)}/s), ${fmt(allowed)} allowed`);
    return {
      seconds,
      allowed,
      other:
        Object.entries(other)
          .map(([k, v]) => `${k}: ${fmt(v)}`)
          .join(', ') || 'none',
    };
  };
  process.stdout.write(`in-process memory run: keyward pid ${ready.pid}, every key from the store`);
  const pass1 = await pass('first pass (cache misses)', INPROC_INFLIGHT);
  // Approximate windows are whole minutes, a key idle for two of them is dropped; strict
  // ones are 5 s sub-windows, a key idle for 14 of them (70 s) is dropped. Starting the
  // cached pass just after a minute begins leaves it at least 70 s before its first keys
  // could go, so every window is live at the end if the pass takes less than that.
  const wait = 60_000 - (Date.now() % 60_000) + 200;
  console.log(`in-process memory run: waiting ${(wait / 1000).toFixed(0)} s for the next minute to begin`);
  await new Promise((r) => setTimeout(r, wait));
  process.stdout.write('in-process memory run: every key again, cached');
  const pass2 = await pass('second pass (cached)', 1);
  driver.send({ type: 'measure', settleMs: INPROC_REST_MS });
  const m = await next('measured');
  driver.send({ type: 'stop' });
  await exited.catch(() => undefined);
  const r: InProcessResult = {
    pass1,
    pass2,
    rssLoadEndMb: m.series[0]!.rssKb / 1024,
    rssMb: m.rssKb / 1024,
    heapUsedMb: m.heapUsed / 1048576,
    heapTotalMb: m.heapTotal / 1048576,
    externalMb: m.external / 1048576,
    cacheSize: m.cacheSize,
    trackedWindows: m.trackedWindows,
  };
  console.log(
    `in-process memory run: ${fmt(r.cacheSize)} keys cached, ${fmt(r.trackedWindows)} windows tracked; RSS at rest, every 5 s: ${m.series.map((x) => `${(x.rssKb / 1024).toFixed(0)} MB (heap ${(x.heapUsed / 1048576).toFixed(0)}/${(x.heapTotal / 1048576).toFixed(0)})`).join(', ')}`,
  );
  return r;
}

export function limiterBytesPerWindow(): number | undefined {
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', join(__dirname, 'generator.ts')], {
    cwd: ROOT,
    env: { ...process.env, BENCH_COLD_ROLE: 'limiter-heap' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  try {
    return (JSON.parse(r.stdout.trim()) as { bytesPerWindow: number }).bytesPerWindow;
  } catch {
    console.log(`  (limiter heap measurement failed: ${r.stderr.slice(-300)})`);
    return undefined;
  }
}
