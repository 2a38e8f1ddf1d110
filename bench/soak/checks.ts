/** The Check traffic: connections, the judged answers of each kind, the open-loop pacing. */
import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { CheckResponse } from '../../src/gen/envoy/service/auth/v3/external_auth';
import { generateKey } from '../../src/keys/format';
import { RawGrpcClient, type Answer } from '../raw-grpc-client';
import { CHECK_PATH, denyCode } from '../support/keyward';
import { CHECK_MIX, CHECK_TIMEOUT_MS, MAX_IN_FLIGHT, OPT } from './options';
import {
  CheckKind,
  LimitedKey,
  PoolKey,
  active,
  fail,
  frameOf,
  invalidKey,
  limitedKeys,
  revoked,
  run,
  tally,
  unknownFrames,
} from './state';

/** Check connections, round robin; one that failed is replaced a second later. */
export class CheckConnections {
  private readonly clients: RawGrpcClient[];
  private next = 0;
  private readonly replacing = new Set<number>();
  constructor(
    private readonly port: number,
    n: number,
  ) {
    this.clients = Array.from({ length: n }, () => this.connect());
  }
  private connect(): RawGrpcClient {
    const c = new RawGrpcClient(this.port, CHECK_PATH);
    c.ready.catch(() => undefined);
    return c;
  }
  ready(): Promise<void[]> {
    return Promise.all(this.clients.map((c) => c.ready));
  }
  call(frame: Buffer, done: (a: Answer) => void): void {
    const i = this.next++ % this.clients.length;
    this.clients[i]!.call(frame, (a) => {
      if (!a.ok && /^(socket|connection closed|GOAWAY)/.test(a.error)) this.replace(i);
      done(a);
    });
  }
  private replace(i: number): void {
    if (this.replacing.has(i) || run.stopping) return;
    this.replacing.add(i);
    setTimeout(() => {
      this.clients[i]!.close();
      this.clients[i] = this.connect();
      this.replacing.delete(i);
    }, 1000);
  }
  close(): void {
    for (const c of this.clients) c.close();
  }
}

export function outcome(r: CheckResponse): string {
  if (r.okResponse) return `allowed (status ${r.status?.code ?? 0})`;
  if (r.deniedResponse) return `denied ${r.deniedResponse.status?.code ?? '?'} ${denyCode(r) ?? ''}`;
  return `no http response (status ${r.status?.code ?? 0})`;
}
export const allowed = (r: CheckResponse) => r.okResponse !== undefined && (r.status?.code ?? 0) === 0;
export const deniedWith = (r: CheckResponse, http: number, code: string) =>
  Number(r.deniedResponse?.status?.code) === http && denyCode(r) === code;

/** Judges an answer: undefined when it is what the kind must get, else what was wrong. */
export type Judge = (r: CheckResponse) => string | undefined;
export const expectAllowed: Judge = (r) => (allowed(r) ? undefined : `expected allowed, got ${outcome(r)}`);
export const expectDenied =
  (http: number, code: string): Judge =>
  (r) =>
    deniedWith(r, http, code) ? undefined : `expected ${http} ${code}, got ${outcome(r)}`;
export const expectInvalid = expectDenied(401, 'invalid_api_key');
export const expectRevoked = expectDenied(401, 'revoked_api_key');
export function expectLimited(k: LimitedKey): Judge {
  return (r) => {
    k.lastAnsweredMs = Date.now();
    if (allowed(r)) {
      k.allowed++;
      return undefined;
    }
    if (deniedWith(r, 429, 'rate_limit_exceeded')) {
      run.limited429++;
      return undefined;
    }
    return `expected allowed or 429 rate_limit_exceeded, got ${outcome(r)}`;
  };
}

export function sendCheck(kind: CheckKind, frame: Buffer, key: PoolKey | undefined, judge: Judge, onDone?: () => void): void {
  tally[kind].sent++;
  if (run.inFlight >= MAX_IN_FLIGHT) {
    fail(kind, `not sent: ${MAX_IN_FLIGHT} Checks already in flight`);
    return onDone?.();
  }
  run.inFlight++;
  if (key) key.inflight++;
  let settled = false;
  const finish = (a: Answer): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    run.inFlight--;
    if (key) key.inflight--;
    let wrong: string | undefined;
    if (!a.ok) wrong = a.error;
    else {
      try {
        wrong = judge(CheckResponse.decode(a.message));
      } catch {
        wrong = 'undecodable CheckResponse';
      }
    }
    if (wrong === undefined) tally[kind].ok++;
    else fail(kind, wrong);
    onDone?.();
  };
  const timer = setTimeout(() => finish({ ok: false, error: `no answer within ${CHECK_TIMEOUT_MS / 1000} s` }), CHECK_TIMEOUT_MS);
  run.conns.call(frame, finish);
}

export const pick = <T>(a: T[]): T => a[randomInt(a.length)]!;

export function sendOne(): void {
  let x = Math.random();
  let kind: CheckKind = 'allow';
  for (const [k, w] of CHECK_MIX) {
    if ((x -= w) < 0) {
      kind = k;
      break;
    }
  }
  switch (kind) {
    case 'allow': {
      const k = pick(active);
      return sendCheck(kind, k.frame, k, expectAllowed);
    }
    case 'limited': {
      const k = pick(limitedKeys);
      k.firstSentMs ??= Date.now();
      return sendCheck(kind, k.frame, k, expectLimited(k));
    }
    case 'unknown':
      return sendCheck(kind, Math.random() < 0.5 ? pick(unknownFrames) : frameOf(generateKey('live')), undefined, expectInvalid);
    case 'invalid':
      return sendCheck(kind, frameOf(invalidKey()), undefined, expectInvalid);
    case 'revoked': {
      const k = pick(revoked);
      return sendCheck(kind, k.frame, k, expectRevoked);
    }
  }
}

/**
 * Before the timed traffic: every key to allow and every revoked key checked once, 8 at
 * a time, so that the run starts with them cached instead of with a burst of misses.
 * These Checks are judged and counted like the others.
 */
export async function warmCache(): Promise<number> {
  const work: [CheckKind, PoolKey, Judge][] = [
    ...active.map((k): [CheckKind, PoolKey, Judge] => ['allow', k, expectAllowed]),
    ...revoked.map((k): [CheckKind, PoolKey, Judge] => ['revoked', k, expectRevoked]),
  ];
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < work.length) {
        const [kind, k, judge] = work[next++]!;
        await new Promise<void>((resolve) => sendCheck(kind, k.frame, k, judge, resolve));
      }
    }),
  );
  return work.length;
}

/** Open loop: every 10 ms, as many Checks as --rate says are due (at most a second's worth at once). */
export function startChecks(): NodeJS.Timeout {
  const start = performance.now();
  let sent = 0;
  return setInterval(() => {
    const due = Math.floor(((performance.now() - start) / 1000) * OPT.rate) - sent;
    const n = Math.min(due, Math.ceil(OPT.rate));
    sent += due; // what could not be sent in time is skipped, not sent in a burst later
    for (let i = 0; i < n; i++) sendOne();
  }, 10);
}
