/**
 * The three servers of bench/latency.ts, each under `--trace-gc-nvp` with its
 * collections read from stdout (bench/latency/gc-trace.ts):
 *  - keyward as in bench/run.ts (SQLite, the in-memory limiter and quota, usage and
 *    last-use recording: the defaults; logging at info, its ports read from the log),
 *    one organization whose keys have a rate limit and a monthly quota far above what
 *    the run sends, KEYS keys, every one cached and checked allowed before the runs;
 *  - the floor (bench/floor-server.ts) with the same keys and keyward's allow response;
 *  - the no-op (bench/noop-server.ts).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, credentials } from '@grpc/grpc-js';
import { CheckResponse } from '../../src/gen/envoy/service/auth/v3/external_auth';
import { CreateOrganizationRequest, KeyAdminClient } from '../../src/gen/keyward/admin/v1/key_admin';
import { UNREACHED_QUOTA as QUOTA, UNREACHED_RATE_LIMIT } from '../support/limits';
import { startServerProcess } from '../../test/support/server-process';
import { checkRequestBytes, grpcFrame } from '../support/check-request';
import { ADMIN_TOKEN } from '../run/settings';
import { state } from '../run/processes';
import { createLiveKeys, describe, pool, rawCheck, rawCheckBytes, startBaseline, unary } from '../run/helpers';
import { GcTrace } from './gc-trace';
import { KEYS } from './settings';

export type ServerName = 'keyward' | 'floor' | 'noop';

export interface Target {
  name: ServerName;
  port: number;
  pid: number;
  gc: GcTrace;
}

export const GC_FLAGS = ['--trace-gc-nvp'];

/** Starts the three servers; their targets and the request frames (one per key, base64). */
export async function startServers(tmp: string): Promise<{ targets: Target[]; frames: string[]; notes: string[] }> {
  const notes: string[] = [];
  state.keyward = await startServerProcess(
    {
      KEYWARD_DATABASE_URL: `sqlite:${join(tmp, 'kw.db')}`,
      KEYWARD_ADMIN_TOKEN: ADMIN_TOKEN,
      KEYWARD_LOG_LEVEL: 'info',
      HOME: tmp,
    },
    tmp,
    // BENCH_KEYWARD_NODE_ARGS (as in bench/run.ts): extra node flags for keyward only, for A/B runs.
    [...GC_FLAGS, ...(process.env.BENCH_KEYWARD_NODE_ARGS ?? '').split(' ').filter(Boolean)],
  );
  const kw = state.keyward;
  const kwGc = new GcTrace(kw.proc.stdout!);

  const admin = new KeyAdminClient(`127.0.0.1:${kw.adminPort}`, credentials.createInsecure());
  const org = await unary(
    admin.createOrganization.bind(admin),
    CreateOrganizationRequest.fromPartial({
      name: 'latency',
      maxKeys: KEYS + 10,
      rateLimitPerMinute: UNREACHED_RATE_LIMIT,
      monthlyQuota: QUOTA,
    }),
  );
  const secrets = await createLiveKeys(admin, org.id, KEYS, 'latency');
  admin.close();

  // Cache every key, and check each is allowed.
  const client = new Client(`127.0.0.1:${kw.authzPort}`, credentials.createInsecure());
  let allowed = 0;
  await pool(secrets, 16, async (s) => {
    if ((await rawCheck(client, checkRequestBytes(s))).okResponse) allowed++;
  });
  if (allowed !== KEYS) throw new Error(`keyward allowed ${allowed} of ${KEYS} keys`);
  const allowBytes = await rawCheckBytes(client, checkRequestBytes(secrets[0]!));
  const sample = CheckResponse.decode(allowBytes);
  const limited = sample.okResponse?.responseHeadersToAdd.some((h) => h.header?.key === 'x-ratelimit-limit') ?? false;
  notes.push(
    `keyward: ${KEYS} keys of one organization (rate limit ${UNREACHED_RATE_LIMIT.toLocaleString('en-US')}/min, monthly quota ${QUOTA.toLocaleString('en-US')}), all cached and allowed: ${describe(sample)}, rate-limit headers ${limited ? 'present' : 'absent'}`,
  );
  client.close();

  const floorFile = join(tmp, 'floor.json');
  writeFileSync(floorFile, JSON.stringify({ keys: secrets, allowBase64: allowBytes.toString('base64') }));
  const floor = await startBaseline('floor', { FLOOR_FILE: floorFile }, GC_FLAGS);
  const floorGc = new GcTrace(floor.proc.stdout!);
  const noop = await startBaseline('noop', {}, GC_FLAGS);
  const noopGc = new GcTrace(noop.proc.stdout!);
  for (const [name, port] of [
    ['floor', floor.port],
    ['noop', noop.port],
  ] as const) {
    const c = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
    const r = await rawCheck(c, checkRequestBytes(secrets[0]!));
    c.close();
    if (!r.okResponse) throw new Error(`${name} did not allow the key`);
  }
  notes.push(
    `keyward 127.0.0.1:${kw.authzPort}, floor 127.0.0.1:${floor.port}, noop 127.0.0.1:${noop.port}, each under node ${GC_FLAGS.join(' ')}`,
  );

  return {
    targets: [
      { name: 'keyward', port: kw.authzPort, pid: kw.proc.pid!, gc: kwGc },
      { name: 'floor', port: floor.port, pid: floor.proc.pid!, gc: floorGc },
      { name: 'noop', port: noop.port, pid: noop.proc.pid!, gc: noopGc },
    ],
    frames: secrets.map((s) => grpcFrame(checkRequestBytes(s)).toString('base64')),
    notes,
  };
}
