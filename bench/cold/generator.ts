/** The child roles: the load generator (gRPC by hand over node:http2) and the limiter-heap probe. */
import * as http2 from 'node:http2';
import { performance } from 'node:perf_hooks';
import { CheckResponse } from '../../src/gen/envoy/service/auth/v3/external_auth';
import { MemoryRateLimiter } from '../../src/limits/sliding-window';
import { newId } from '../../src/util/ids';
import { CHECK_PATH } from '../support/keyward';
import { RATE_LIMIT } from './settings';
import { buildRequests, describe, hasOkResponse } from './requests';

/** Parent → generator. */
export type ToGen = { type: 'keys'; keys: Uint8Array; keyLen: number } | { type: 'start'; port: number; inflight: number; seconds: number };
/** Generator → parent. */
export type FromGen = { type: 'ready'; count: number } | { type: 'progress'; done: number } | { type: 'result'; result: GenResult };

export interface GenResult {
  /** Requests answered (allowed + denied + errors); keys [0, done) of the slice were sent. */
  done: number;
  allowed: number;
  denied: Record<string, number>;
  errors: Record<string, number>;
  startMs: number;
  endMs: number;
  /** ms per request, in completion order. */
  latencies: Float64Array;
  /** The generator's own CPU time during the load, ms. */
  cpuMs: number;
}

export function loadGenerator(): void {
  let reqs: { blob: Buffer; len: number; count: number } | undefined;
  const send = (m: FromGen) => process.send!(m);
  process.on('disconnect', () => process.exit(0));
  process.on('message', (m: ToGen) => {
    if (m.type === 'keys') {
      reqs = buildRequests(m.keys, m.keyLen);
      send({ type: 'ready', count: reqs.count });
      return;
    }
    const { blob, len, count } = reqs!;
    // gRPC by hand over node:http2 (one connection): a fraction of a grpc-js client's CPU
    // per call, so that the generators can outpace keyward.
    const session = http2.connect(`http://127.0.0.1:${m.port}`);
    session.on('error', () => undefined);
    const requestHeaders = { ':method': 'POST', ':path': CHECK_PATH, 'content-type': 'application/grpc', te: 'trailers' };
    const latencies = new Float64Array(count);
    const denied: Record<string, number> = {};
    const errors: Record<string, number> = {};
    let next = 0;
    let done = 0;
    let active = 0;
    let allowed = 0;
    const cpu0 = process.cpuUsage();
    const startMs = Date.now();
    const stopAt = m.seconds > 0 ? performance.now() + m.seconds * 1000 : Infinity;
    const progress = setInterval(() => send({ type: 'progress', done }), 1000);
    const finish = () => {
      clearInterval(progress);
      const cpu = process.cpuUsage(cpu0);
      session.close();
      const result: GenResult = {
        done,
        allowed,
        denied,
        errors,
        startMs,
        endMs: Date.now(),
        latencies: latencies.subarray(0, done),
        cpuMs: (cpu.user + cpu.system) / 1000,
      };
      process.send!({ type: 'result', result } satisfies FromGen, () => process.disconnect());
    };
    // Closed loop: each answer sends the next key's request, so `inflight` stay in flight.
    const fire = (): void => {
      const i = next++;
      const t = performance.now();
      active++;
      const stream = session.request(requestHeaders);
      const chunks: Buffer[] = [];
      let grpcStatus: string | undefined;
      stream.on('response', (h: http2.IncomingHttpHeaders) => (grpcStatus = (h['grpc-status'] as string | undefined) ?? grpcStatus));
      stream.on('trailers', (h: http2.IncomingHttpHeaders) => (grpcStatus = h['grpc-status'] as string | undefined));
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', () => undefined);
      stream.on('close', () => {
        const now = performance.now();
        latencies[done++] = now - t;
        active--;
        const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        if (grpcStatus !== '0' || body.length < 5) {
          const what = `gRPC ${grpcStatus ?? `stream closed (${stream.rstCode})`}`;
          errors[what] = (errors[what] ?? 0) + 1;
        } else if (hasOkResponse(body, 5)) allowed++;
        else {
          const what = describe(CheckResponse.decode(body.subarray(5)));
          denied[what] = (denied[what] ?? 0) + 1;
        }
        if (next < count && now < stopAt) fire();
        else if (active === 0) finish();
      });
      stream.end(blob.subarray(i * len, (i + 1) * len));
    };
    for (let k = 0; k < Math.min(m.inflight, count); k++) fire();
    if (count === 0) finish();
  });
}

/**
 * Bytes per window of the in-memory limiter (JS heap plus array buffers), for key ids
 * like keyward's, which the key cache holds anyway (run with --expose-gc).
 */
export function limiterHeap(): void {
  const n = 1_000_000;
  // Flat strings, as the database driver returns them (newId's own result is a rope,
  // which the Map would flatten, freeing more than it takes).
  const ids = Array.from({ length: n }, () => Buffer.from(newId('key', Date.now()), 'latin1').toString('latin1'));
  const gc = (globalThis as { gc?: () => void }).gc!;
  gc();
  const used = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const before = used();
  const limiter = new MemoryRateLimiter({ maxKeys: n + 1 });
  const now = Date.now();
  for (const id of ids) limiter.consume(id, RATE_LIMIT, now);
  gc();
  const after = used();
  if (limiter.stats().trackedKeys !== n || ids.length !== n) throw new Error('limiter did not keep every window');
  process.stdout.write(JSON.stringify({ bytesPerWindow: (after - before) / n }) + '\n');
}

// This file is what the driver forks (BENCH_COLD_ROLE says which role).
if (process.env.BENCH_COLD_ROLE === 'loadgen') loadGenerator();
else if (process.env.BENCH_COLD_ROLE === 'limiter-heap') limiterHeap();
