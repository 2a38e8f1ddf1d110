/**
 * The open-loop load generator of bench/latency.ts, run as a forked child so that it
 * never shares an event loop with the measuring parent. For each run the parent sends a
 * `GeneratorRun` over IPC; the child answers with a `GeneratorResult`.
 *
 * Open loop: request i is due at t0 + i / rate whatever the earlier ones are doing (no
 * cap on requests in flight), and its latency is measured from that intended time, not
 * from when it was sent, so a stall of the server or of the generator shows up in the
 * latencies instead of silently lowering the rate (no coordinated omission). Sends go
 * out from a timer that wakes at the next due time (libuv's 1 ms granularity), each
 * sending every request due by then; how late each was sent against its intended time
 * is the generator's own schedule lag, reported beside the latencies.
 *
 * Requests are pre-encoded gRPC frames (one per key, in turn) over `connections`
 * hand-framed HTTP/2 connections (bench/raw-grpc-client.ts), streams spread round-robin.
 * Latencies of requests due inside the measured window (after the warm-up) go into an
 * HDR histogram (µs, 3 significant digits). A request still unanswered `drainSeconds`
 * after the last send is recorded at the time waited so far and counted as unanswered.
 */
import { performance } from 'node:perf_hooks';
import * as hdr from 'hdr-histogram-js';
import { RawGrpcClient, type Answer } from '../raw-grpc-client';
import { CHECK_PATH } from '../support/keyward';

export interface GeneratorRun {
  port: number;
  /** Whole gRPC request frames, base64; request i sends frames[i % length]. */
  frames: string[];
  rate: number;
  connections: number;
  warmupSeconds: number;
  seconds: number;
  drainSeconds: number;
}

export interface Percentiles {
  count: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

export interface GeneratorResult {
  /** The measured window in epoch milliseconds (intended send times). */
  windowStartMs: number;
  windowEndMs: number;
  /** Of the requests due in the window: how many, sent, answered (any gRPC answer with a message), allowed, failed, never answered. */
  due: number;
  sent: number;
  answered: number;
  allowed: number;
  errors: number;
  unanswered: number;
  firstError?: string;
  /** Answers and allows that arrived inside the window, whichever request they answer: the server's throughput then. */
  answeredInWindow: number;
  allowedInWindow: number;
  /** The generator's own CPU (user + system) per request sent, in µs. */
  cpuUsPerRequest: number;
  /** Requests of the window sent per second, timed by when they were actually sent. */
  achievedRate: number;
  /** Latency from the intended send time. */
  latency: Percentiles;
  /** Latency from the actual send (what a closed-loop tool would see), for comparison. */
  service: Percentiles;
  /** Send time minus intended time, over every request of the run (warm-up included). */
  lag: Percentiles;
  maxInFlight: number;
}

/**
 * Whether a CheckResponse (protobuf bytes) allows: no denied_response (field 2) and a
 * status (field 1) whose code (its field 1) is 0 or absent. Walks top-level fields only.
 */
export function isAllow(msg: Buffer): boolean {
  let at = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const b = msg[at++]!;
      v += (b & 0x7f) * mul;
      if (b < 0x80 || at >= msg.length) return v;
      mul *= 128;
    }
  };
  while (at < msg.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 0) varint();
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const len = varint();
      if (field === 2) return false;
      const end = at + len;
      if (field === 1 && len > 0 && msg[at] === 0x08) {
        at++;
        if (varint() !== 0) return false;
      }
      at = end;
    } else return false;
  }
  return true;
}

const histogram = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });

function percentiles(h: hdr.Histogram): Percentiles {
  const ms = (us: number) => us / 1000;
  return {
    count: h.totalCount,
    meanMs: ms(h.mean),
    p50Ms: ms(h.getValueAtPercentile(50)),
    p90Ms: ms(h.getValueAtPercentile(90)),
    p99Ms: ms(h.getValueAtPercentile(99)),
    p999Ms: ms(h.getValueAtPercentile(99.9)),
    maxMs: ms(h.maxValue),
  };
}

const us = (ms: number) => Math.max(1, Math.round(ms * 1000));

export async function generate(run: GeneratorRun): Promise<GeneratorResult> {
  const frames = run.frames.map((f) => Buffer.from(f, 'base64'));
  const clients = Array.from({ length: run.connections }, () => new RawGrpcClient(run.port, CHECK_PATH));
  await Promise.all(clients.map((c) => c.ready));
  const latency = histogram();
  const service = histogram();
  const lag = histogram();
  const interval = 1000 / run.rate;
  const total = Math.round(run.rate * (run.warmupSeconds + run.seconds));
  const first = Math.round(run.rate * run.warmupSeconds); // the first request of the window
  const done = new Uint8Array(total); // 1 once request i has been answered or failed
  let answered = 0;
  let allowed = 0;
  let errors = 0;
  let firstError: string | undefined;
  let inFlight = 0;
  let maxInFlight = 0;
  let answeredInWindow = 0;
  let allowedInWindow = 0;
  let windowSent = 0;
  let firstWindowSend = NaN;
  let lastSend = NaN;
  let next = 0;
  // Start on a fresh tick so that set-up work does not count as lag.
  await new Promise((r) => setTimeout(r, 20));
  const t0 = performance.now();
  const windowStart = t0 + first * interval;
  const windowEnd = t0 + total * interval;
  const cpu0 = process.cpuUsage();

  const send = (i: number, now: number) => {
    const intended = t0 + i * interval;
    lag.recordValue(us(now - intended));
    const inWindow = i >= first;
    if (inWindow) {
      if (windowSent === 0) firstWindowSend = now;
      lastSend = now;
      windowSent++;
    }
    inFlight++;
    if (inFlight > maxInFlight) maxInFlight = inFlight;
    clients[i % clients.length]!.call(frames[i % frames.length]!, (a: Answer) => {
      const end = performance.now();
      inFlight--;
      done[i] = 1;
      const allow = a.ok && isAllow(a.message);
      if (a.ok && end >= windowStart && end < windowEnd) {
        answeredInWindow++;
        if (allow) allowedInWindow++;
      }
      if (!inWindow) return;
      latency.recordValue(us(end - intended));
      service.recordValue(us(end - now));
      if (a.ok) {
        answered++;
        if (allow) allowed++;
      } else {
        errors++;
        firstError ??= a.error;
      }
    });
  };

  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(total, Math.floor((now - t0) / interval) + 1);
      while (next < due) send(next++, now);
      if (next >= total) return resolve();
      setTimeout(tick, Math.max(0, t0 + next * interval - performance.now()));
    };
    tick();
  });

  const drainUntil = performance.now() + run.drainSeconds * 1000;
  while (inFlight > 0 && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 10));
  const cpu = process.cpuUsage(cpu0);
  const now = performance.now();
  let unanswered = 0;
  for (let i = first; i < total; i++)
    if (!done[i]) {
      unanswered++;
      latency.recordValue(us(now - (t0 + i * interval)));
    }
  for (const c of clients) c.close();
  const result: GeneratorResult = {
    windowStartMs: performance.timeOrigin + windowStart,
    windowEndMs: performance.timeOrigin + windowEnd,
    due: total - first,
    sent: windowSent,
    answered,
    allowed,
    errors,
    unanswered,
    firstError,
    answeredInWindow,
    allowedInWindow,
    cpuUsPerRequest: (cpu.user + cpu.system) / total,
    // Sent in the window per second, from the first send in the window to one interval after the last.
    achievedRate: windowSent / ((lastSend - firstWindowSend + interval) / 1000),
    latency: percentiles(latency),
    service: percentiles(service),
    lag: percentiles(lag),
    maxInFlight,
  };
  latency.destroy();
  service.destroy();
  lag.destroy();
  return result;
}

if (process.send) {
  process.on('message', (m: GeneratorRun) => {
    generate(m).then(
      (r) => process.send!({ ok: true, result: r }),
      (e: unknown) => process.send!({ ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e) }),
    );
  });
}
