/**
 * The second pass: every key again (all cached now) as fast as the generators go, so that
 * every key's rate-limit window is live at once (windows idle for 2 minutes are dropped):
 * RSS with all keys cached and all windows tracked, measured, not projected.
 */
import { credentials } from '@grpc/grpc-js';
import { KeyAdminClient } from '../../src/gen/keyward/admin/v1/key_admin';
import { memoryOf } from '../support/keyward';
import type { GenResult, ToGen } from './generator';
import { startGenerator } from './keyward';
import { state } from './processes';
import { INFLIGHT, KEYS, PASS2_GENERATORS } from './settings';
import { fmt, mb, unary } from './system';

export interface SecondPass {
  seconds: number;
  reqPerSec: number;
  allowed: number;
  tracked: number;
  rssMb: number;
}

export async function secondPass(keys: Buffer, keyLen: number, pid: number): Promise<SecondPass> {
  const pslices = Array.from({ length: PASS2_GENERATORS }, (_, g) => ({
    from: Math.floor((KEYS * g) / PASS2_GENERATORS),
    to: Math.floor((KEYS * (g + 1)) / PASS2_GENERATORS),
  }));
  const pgens = await Promise.all(pslices.map((sl) => startGenerator(keys.subarray(sl.from * keyLen, sl.to * keyLen), keyLen)));
  process.stdout.write(`second pass: every key again (cached), ${PASS2_GENERATORS} generators x ${INFLIGHT} in flight ...`);
  const t2 = Date.now();
  const r2 = await Promise.all(
    pgens.map(
      (g) =>
        new Promise<GenResult>((resolve, reject) => {
          g.onMessage((m) => m.type === 'result' && resolve(m.result));
          g.proc.on('exit', () => reject(new Error('load generator exited before its result')));
          g.proc.send({ type: 'start', port: state.keyward!.authzPort, inflight: INFLIGHT, seconds: 0 } satisfies ToGen);
        }),
    ),
  );
  const seconds = (Date.now() - t2) / 1000;
  const admin3 = new KeyAdminClient(`127.0.0.1:${state.keyward!.adminPort}`, credentials.createInsecure());
  const tracked2 = Number((await unary(admin3.getRateLimiterStats.bind(admin3), {})).trackedKeys);
  admin3.close();
  const done2 = r2.reduce((a, r) => a + r.done, 0);
  const pass2 = {
    seconds,
    reqPerSec: done2 / seconds,
    allowed: r2.reduce((a, r) => a + r.allowed, 0),
    tracked: tracked2,
    rssMb: mb(memoryOf(pid).rssKb),
  };
  console.log(
    ` ${fmt(done2)} Checks in ${seconds.toFixed(1)}s (${fmt(pass2.reqPerSec)} req/s), ${fmt(pass2.allowed)} allowed; windows tracked ${fmt(tracked2)}; RSS ${pass2.rssMb.toFixed(0)} MB`,
  );
  return pass2;
}
