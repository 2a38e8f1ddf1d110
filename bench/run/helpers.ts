/** Baseline servers, raw Checks, h2load and nghttp runs, and formatting. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Client, type ServiceError } from '@grpc/grpc-js';
import { CheckResponse } from '../../src/gen/envoy/service/auth/v3/external_auth';
import { Environment, type KeyAdminClient } from '../../src/gen/keyward/admin/v1/key_admin';
import { checkRequestBytes } from '../support/check-request';
import { CHECK_PATH, adminUnary, identity } from '../support/keyward';
import { ADMIN_TOKEN, DURATION, WARMUP } from './settings';
import { track } from './processes';

export function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return (r.stdout ?? '').trim();
}

/**
 * Starts bench/<name>-server.ts (the no-op or the floor), which prints `<name> listening on 127.0.0.1:<port>`.
 * `nodeArgs` go to node before the script (for example --trace-gc-nvp).
 */
export async function startBaseline(
  name: 'noop' | 'floor',
  env: Record<string, string> = {},
  nodeArgs: string[] = [],
): Promise<{ port: number; proc: ChildProcess }> {
  const proc = track(
    spawn(process.execPath, [...nodeArgs, '--import', 'tsx', join(__dirname, '..', `${name}-server.ts`)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    }),
  );
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += String(d)));
  proc.stderr!.on('data', (d) => (err += String(d)));
  const deadline = Date.now() + 20_000;
  for (;;) {
    const m = new RegExp(`${name} listening on 127\\.0\\.0\\.1:(\\d+)`).exec(out);
    if (m) return { port: Number(m[1]), proc };
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`${name} server did not start:\n${out}\n${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const unary = adminUnary(ADMIN_TOKEN);

export const payloadLen = (key: string): number => checkRequestBytes(key).length + 5;
/** Sends exactly `payload` as the Check request; the CheckResponse's bytes. */
export function rawCheckBytes(client: Client, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      CHECK_PATH,
      identity,
      identity,
      payload,
      { deadline: Date.now() + 10_000 },
      (e: ServiceError | null, r?: Buffer) => (e ? reject(e) : resolve(r!)),
    ),
  );
}

/** Sends exactly `payload` as the Check request and decodes the CheckResponse. */
export async function rawCheck(client: Client, payload: Buffer): Promise<CheckResponse> {
  return CheckResponse.decode(await rawCheckBytes(client, payload));
}

export async function pool<T>(items: T[], width: number, fn: (t: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

/** `count` live keys `<prefix>-<i>` in the organization, through KeyAdmin (8 at a time); their secrets, in order. */
export async function createLiveKeys(admin: KeyAdminClient, organizationId: string, count: number, prefix: string): Promise<string[]> {
  const secrets = new Array<string>(count);
  await pool(
    Array.from({ length: count }, (_, i) => i),
    8,
    async (i) => {
      const r = await unary(admin.createKey.bind(admin), {
        requestId: '',
        organizationId,
        name: `${prefix}-${i}`,
        environment: Environment.ENVIRONMENT_LIVE,
        scopes: [],
        metadata: {},
      });
      secrets[i] = r.secret;
    },
  );
  return secrets;
}

export interface H2Result {
  reqPerSec: number;
  meanMs: number;
  done: number;
  non2xx: number;
  failed: number;
  errored: number;
}

export function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v);
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
}

export function h2load(port: number, dataFile: string, c: number, m: number, duration = DURATION, warmup = WARMUP): Promise<H2Result> {
  const args = [
    '-D',
    String(duration),
    '--warm-up-time',
    String(warmup),
    '-t',
    '1',
    '-c',
    String(c),
    '-m',
    String(m),
    '-d',
    dataFile,
    '-H',
    'content-type: application/grpc',
    '-H',
    'te: trailers',
    `http://127.0.0.1:${port}${CHECK_PATH}`,
  ];
  return new Promise((resolve, reject) => {
    const p = track(spawn('h2load', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    p.stdout!.on('data', (d) => (out += String(d)));
    p.stderr!.on('data', (d) => (out += String(d)));
    const timer = setTimeout(() => p.kill('SIGKILL'), (duration + warmup + 30) * 1000);
    p.on('exit', (code) => {
      clearTimeout(timer);
      const rps = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out);
      const reqs = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
      const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
      const time = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
      if (code !== 0 || !rps || !reqs || !codes || !time) return reject(new Error(`h2load failed (exit ${code}):\n${out}`));
      resolve({
        reqPerSec: Number(rps[1]),
        meanMs: toMs(time[3]!),
        done: Number(reqs[3]),
        non2xx: Number(codes[2]) + Number(codes[3]) + Number(codes[4]),
        failed: Number(reqs[5]),
        errored: Number(reqs[6]),
      });
    });
  });
}

/** One nghttp request with the data file: the gRPC status in the trailers. */
export function nghttpStatus(port: number, dataFile: string): string {
  const out = sh('nghttp', [
    '-v',
    '-n',
    '-d',
    dataFile,
    '-H',
    'content-type: application/grpc',
    '-H',
    'te: trailers',
    `http://127.0.0.1:${port}${CHECK_PATH}`,
  ]);
  const m = /grpc-status: (\d+)/.exec(out);
  return m ? m[1]! : 'absent';
}

export const fmtRps = (n: number) => Math.round(n).toLocaleString('en-US');
export const fmtMs = (n: number) => `${n.toFixed(3)} ms`;

export function describe(r: CheckResponse): string {
  if (r.okResponse) return `allow (status ${r.status?.code ?? 0})`;
  if (r.deniedResponse)
    return `deny HTTP ${r.deniedResponse.status?.code} (status ${r.status?.code}${r.status?.message ? `: ${r.status.message}` : ''})`;
  return `status ${r.status?.code}`;
}
