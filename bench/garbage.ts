/**
 * Garbage per allowed Check, whole process: every byte allocated on the V8 heap while a
 * gRPC server answers h2load's Checks (-c16 -m16, BENCH_GARBAGE_REQUESTS, 100,000, after
 * 50,000 unmeasured), from V8's sampling heap profiler with the objects that collections
 * have since freed included (HeapProfiler.startSampling, includeObjectsCollectedBy*GC),
 * at one sample per 256 bytes on average. Each server runs in its own child process:
 *  - keyward: startApp on SQLite, an organization whose rate limit and quota are
 *    consulted on every Check and never reached, one cached key;
 *  - the no-op: a bare grpc-js server with keyward's server options answering a fixed
 *    OK (bench/support/check-server.ts's definition, in process).
 * keyward's own share is the difference. The allocation sites are grouped by the
 * innermost keyward frame on the stack (else the innermost @grpc/grpc-js one, else
 * the site itself), for where the rest comes from.
 *
 *   BENCH_ONLY=garbage npm run bench
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, ServerCredentials, type handleUnaryCall } from '@grpc/grpc-js';
import { ROOT } from '../src/admin/principal';
import { CheckResponse } from '../src/gen/envoy/service/auth/v3/external_auth';
import { GRPC_SERVER_OPTIONS } from '../src/grpc/server-options';
import { startInProcessApp } from './support/in-process-app';
import { checkRequestBytes, grpcFrame } from './support/check-request';
import { UNREACHED_QUOTA, UNREACHED_RATE_LIMIT } from './support/limits';
import { table } from './support/table';

const REQUESTS = Number(process.env.BENCH_GARBAGE_REQUESTS ?? 100_000);
const WARMUP_REQUESTS = 50_000;
const ROLE = process.env.BENCH_GARBAGE_ROLE as 'keyward' | 'noop' | undefined;
const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';

interface Measured {
  role: string;
  bytesPerCheck: number;
  done: number;
  /** Bytes per Check by allocation owner, largest first. */
  owners: [string, number][];
}

function h2load(port: number, file: string, n: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const args = ['-n', String(n), '-t', '1', '-c', '16', '-m', '16', '-d', file];
    const p = spawn('h2load', [
      ...args,
      '-H',
      'content-type: application/grpc',
      '-H',
      'te: trailers',
      `http://127.0.0.1:${port}${CHECK_PATH}`,
    ]);
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += String(d)));
    p.on('error', reject);
    p.on('close', () => {
      const m = /requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded/.exec(out);
      if (!m || m[2] !== String(n)) reject(new Error(`h2load: ${out}`));
      else resolve(Number(m[2]));
    });
  });
}

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: ProfileNode[];
}

function owners(head: ProfileNode, n: number): [string, number][] {
  const by = new Map<string, number>();
  const name = (f: ProfileNode['callFrame']) => {
    const url = f.url.includes('/node_modules/') ? f.url.replace(/^.*\/node_modules\//, '') : f.url.replace(/^.*\/(src|bench)\//, '$1/');
    return `${f.functionName || '(anonymous)'} ${url}`;
  };
  const walk = (node: ProfileNode, keyward: string | undefined, grpc: string | undefined) => {
    const here = name(node.callFrame);
    const k = /\/(src|dist)\//.test(node.callFrame.url) && !node.callFrame.url.includes('node_modules') ? here : keyward;
    const g = node.callFrame.url.includes('@grpc/grpc-js') ? here : grpc;
    if (node.selfSize > 0) {
      const owner = k !== undefined ? `keyward: ${k}` : (g ?? here);
      by.set(owner, (by.get(owner) ?? 0) + node.selfSize);
    }
    for (const c of node.children) walk(c, k, g);
  };
  walk(head, undefined, undefined);
  return [...by].map(([o, b]) => [o, b / n] as [string, number]).sort((a, b) => b[1] - a[1]);
}

async function serve(tmp: string): Promise<{ port: number; key: string; close: () => Promise<void> }> {
  if (ROLE === 'noop') {
    const ok = Buffer.from(CheckResponse.encode(CheckResponse.fromPartial({ status: { code: 0 }, okResponse: {} })).finish());
    const id = (b: Buffer) => b;
    const server = new Server(GRPC_SERVER_OPTIONS);
    const check: handleUnaryCall<Buffer, Buffer> = (_call, callback) => callback(null, ok);
    const method = { path: CHECK_PATH, requestStream: false, responseStream: false };
    server.addService(
      { Check: { ...method, requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id } },
      { Check: check },
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    return {
      port,
      key: 'kw_live_0000000000000000000000000000000000000000',
      close: () => new Promise((r) => server.tryShutdown(() => r())),
    };
  }
  const app = await startInProcessApp(`sqlite:${join(tmp, 'kw.db')}`);
  const ctx = { principal: ROOT, peer: 'bench' };
  const org = await app.admin.organizations.create(ctx, {
    name: 'garbage',
    maxKeys: 10,
    rateLimitPerMinute: UNREACHED_RATE_LIMIT,
    monthlyQuota: UNREACHED_QUOTA,
    billingAnchorDay: 1,
  });
  const k = await app.admin.keys.create(ctx, { organizationId: org.id, name: 'k', environment: 'live', scopes: [], metadata: {} });
  return { port: app.authzPort, key: k.secret, close: () => app.close(1000) };
}

async function child(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'keyward-garbage-'));
  const server = await serve(tmp);
  const file = join(tmp, 'check.bin');
  writeFileSync(file, grpcFrame(checkRequestBytes(server.key)));
  await h2load(server.port, file, WARMUP_REQUESTS);
  const session = new Session();
  session.connect();
  const post = <T>(method: string, params?: object) =>
    new Promise<T>((resolve, reject) => session.post(method, params, (e, r) => (e ? reject(e) : resolve(r as T))));
  await post('HeapProfiler.startSampling', {
    samplingInterval: 256,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  const done = await h2load(server.port, file, REQUESTS);
  const { profile } = await post<{ profile: { head: ProfileNode } }>('HeapProfiler.stopSampling');
  session.disconnect();
  const byOwner = owners(profile.head, done);
  const total = byOwner.reduce((a, [, b]) => a + b, 0);
  const measured: Measured = { role: ROLE!, bytesPerCheck: total, done, owners: byOwner.slice(0, 25) };
  console.log(`GARBAGE ${JSON.stringify(measured)}`);
  await server.close();
  rmSync(tmp, { recursive: true, force: true });
}

function run(role: 'keyward' | 'noop'): Measured {
  const r = spawnSync(process.execPath, ['--import', 'tsx', __filename], {
    env: { ...process.env, BENCH_GARBAGE_ROLE: role },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const line = /^GARBAGE (.*)$/m.exec(r.stdout ?? '');
  if (!line) throw new Error(`${role}: ${r.stdout}${r.stderr}`);
  return JSON.parse(line[1]!) as Measured;
}

function main(): void {
  console.log(`# Garbage per allowed Check, whole process (V8 sampling heap profiler, freed objects included), h2load -c16 -m16`);
  console.log(
    `${REQUESTS.toLocaleString('en-US')} Checks measured after ${WARMUP_REQUESTS.toLocaleString('en-US')}; date ${new Date().toISOString()}`,
  );
  const kw = run('keyward');
  const noop = run('noop');
  const kb = (b: number) => Math.round(b).toLocaleString('en-US');
  console.log('');
  console.log(
    table(
      ['server', 'bytes per Check'],
      [
        ['keyward', kb(kw.bytesPerCheck)],
        ['no-op (grpc-js and HTTP/2 alone)', kb(noop.bytesPerCheck)],
        ["keyward's own share", kb(kw.bytesPerCheck - noop.bytesPerCheck)],
      ],
    ),
  );
  console.log('');
  console.log('keyward, by owner (the innermost keyward frame, else grpc-js, else the allocation site), bytes per Check:');
  console.log(
    table(
      ['owner', 'bytes'],
      kw.owners.slice(0, 20).map(([o, b]) => [o, kb(b)]),
    ),
  );
  console.log(
    `BENCH_RESULT ${JSON.stringify({ garbage: { keyward: Math.round(kw.bytesPerCheck), noop: Math.round(noop.bytesPerCheck), own: Math.round(kw.bytesPerCheck - noop.bytesPerCheck) } })}`,
  );
}

if (ROLE) {
  child().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
} else main();
