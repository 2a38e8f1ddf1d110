/** What the parts of the run share: tallies, key pools, and the mutable run state. */
import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { KeyAdminClient } from '../../src/gen/keyward/admin/v1/key_admin';
import { generateKey } from '../../src/keys/format';
import { type ServerProcess } from '../../test/support/server-process';
import { checkRequestBytes, grpcFrame } from '../support/check-request';
import type { CheckConnections } from './checks';

export const CHECK_KINDS = ['allow', 'invalid', 'unknown', 'revoked', 'limited'] as const;
export type CheckKind = (typeof CHECK_KINDS)[number];
export const KINDS = [...CHECK_KINDS, 'admin', 'als', 'ops'] as const;
export type Kind = (typeof KINDS)[number];

export interface Tally {
  /** Requests sent (for als: entries written). */
  sent: number;
  /** Answers as expected (for als: entries in streams answered OK). */
  ok: number;
  /** Wrong answers, failures, timeouts (for als: failed streams). */
  errors: number;
  /** Error descriptions and their counts (the first 20 distinct). */
  messages: Map<string, number>;
}
export const tally = Object.fromEntries(KINDS.map((k) => [k, { sent: 0, ok: 0, errors: 0, messages: new Map() }])) as Record<Kind, Tally>;
export const afterInterrupt = new Map<string, number>();
export const adminCalls = new Map<string, { calls: number; errors: number; ms: number }>();

export function fail(kind: Kind, what: string): void {
  if (run.interrupted) {
    run.failuresAfterInterrupt++;
    afterInterrupt.set(`${kind}: ${what}`, (afterInterrupt.get(`${kind}: ${what}`) ?? 0) + 1);
    return;
  }
  const t = tally[kind];
  t.errors++;
  const m = t.messages;
  if (m.has(what) || m.size < 20) m.set(what, (m.get(what) ?? 0) + 1);
}

export function grpcError(e: unknown): string {
  const se = e as Partial<ServiceError>;
  if (typeof se.code !== 'number') return e instanceof Error ? e.message : String(e);
  const code = se.metadata?.get('x-error-code')[0];
  return `${grpcStatus[se.code] ?? se.code}${code ? ` ${String(code)}` : ''}: ${se.details ?? ''}`;
}

export interface PoolKey {
  id: string;
  orgId: string;
  /** The Check request's gRPC message frame (the key is in it). */
  frame: Buffer;
  /** Checks with this key in flight. */
  inflight: number;
  churn: boolean;
  rotated: boolean;
}
export interface LimitedKey extends PoolKey {
  allowed: number;
  firstSentMs?: number;
  lastAnsweredMs?: number;
}
export const active: PoolKey[] = [];
export const revoked: PoolKey[] = [];
export const limitedKeys: LimitedKey[] = [];
export const unknownFrames: Buffer[] = [];
export const frameOf = (key: string): Buffer => grpcFrame(checkRequestBytes(key));

/** Keys keyward must refuse before any lookup: bad checksum, too short, unknown environment, too long. */
export function invalidKey(): string {
  const k = generateKey('live');
  switch (randomInt(4)) {
    case 0:
      return k.slice(0, -1) + (k.endsWith('A') ? 'B' : 'A');
    case 1:
      return k.slice(0, 30);
    case 2:
      return `kw_prod_${k.slice(8)}`;
    default:
      return `${k}x`;
  }
}

export let wakeMain: () => void = () => undefined;
export const interruptedPromise = new Promise<void>((resolve) => (wakeMain = resolve));
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const sinceLoad = () => performance.now() - run.loadStart;

/** What the run's parts share and change. */
export const run = {
  server: undefined as ServerProcess | undefined,
  tmp: undefined as string | undefined,
  dbCreated: false,
  stopping: false,
  interrupted: false,
  loadStart: 0,
  limited429: 0,
  /** Failures after Ctrl-C: keyward may be shutting down by then; not counted as errors. */
  failuresAfterInterrupt: 0,
  inFlight: 0,
  limiterBackend: 'memory',
  seq: 0,
  conns: undefined as unknown as CheckConnections,
  admin: undefined as unknown as KeyAdminClient,
};
