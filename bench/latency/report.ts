/** The tables and the BENCH_RESULT figures of bench/latency.ts. */
import { table } from '../support/table';
import type { GeneratorResult } from './generator';
import type { GcWindow } from './gc-trace';
import type { ServerName } from './servers';
import { GC_LEVEL, LAG_WARN_MS, SECONDS, TARGET_LEVELS, TARGET_P99, TARGET_P999 } from './settings';

export interface RunResult {
  level: number;
  rate: number;
  server: ServerName;
  gen: GeneratorResult;
  gc: GcWindow;
  /** V8 heap bytes allocated per allowed Check: the allocation rate over the allows per second answered in the window. */
  bytesPerCheck: number | undefined;
}

const ms = (n: number) => n.toFixed(n >= 100 ? 0 : n >= 10 ? 1 : 2);
const int = (n: number) => Math.round(n).toLocaleString('en-US');

/** Why a run's figures are suspect: the generator fell behind, or answers were missing or not allows. */
export function warnings(r: RunResult): string[] {
  const w: string[] = [];
  const g = r.gen;
  if (g.lag.maxMs > LAG_WARN_MS || g.achievedRate < 0.99 * r.rate)
    w.push(
      `the generator did not keep the rate: achieved ${int(g.achievedRate)} of ${int(r.rate)} req/s, its schedule lag p99 ${ms(g.lag.p99Ms)} ms, max ${ms(g.lag.maxMs)} ms`,
    );
  if (g.errors || g.unanswered)
    w.push(`${g.errors} failed, ${g.unanswered} unanswered after the drain${g.firstError ? ` (first: ${g.firstError})` : ''}`);
  if (g.allowed !== g.answered) w.push(`${g.answered - g.allowed} of ${g.answered} answers were not allows`);
  return w;
}

export function latencyTable(runs: RunResult[]): string {
  return table(
    [
      'load',
      'server',
      'achieved req/s',
      'p50 ms',
      'p90 ms',
      'p99 ms',
      'p99.9 ms',
      'max ms',
      'p99 from send',
      'in flight max',
      'gen. lag p99/max ms',
      'gen. CPU µs/req',
    ],
    runs.map((r) => [
      `${r.level} % (${int(r.rate)}/s)`,
      r.server,
      int(r.gen.achievedRate),
      ms(r.gen.latency.p50Ms),
      ms(r.gen.latency.p90Ms),
      ms(r.gen.latency.p99Ms),
      ms(r.gen.latency.p999Ms),
      ms(r.gen.latency.maxMs),
      ms(r.gen.service.p99Ms),
      int(r.gen.maxInFlight),
      `${ms(r.gen.lag.p99Ms)}/${ms(r.gen.lag.maxMs)}`,
      r.gen.cpuUsPerRequest.toFixed(1),
    ]),
  );
}

export interface Ratio {
  level: number;
  p99: number;
  p999: number;
  floorP99: number;
  floorP999: number;
  /** Only at the target levels. */
  met?: boolean;
  /** Some run at this load had warnings (the generator lagged, answers were missing or not allows). */
  suspect: boolean;
}

export function ratios(runs: RunResult[], levels: number[]): Ratio[] {
  return levels.map((level) => {
    const at = (s: ServerName) => runs.find((r) => r.level === level && r.server === s)!.gen.latency;
    const k = at('keyward');
    const f = at('floor');
    const n = at('noop');
    const suspect = runs.some((r) => r.level === level && warnings(r).length > 0);
    const ratio: Ratio = {
      level,
      suspect,
      p99: k.p99Ms / n.p99Ms,
      p999: k.p999Ms / n.p999Ms,
      floorP99: f.p99Ms / n.p99Ms,
      floorP999: f.p999Ms / n.p999Ms,
    };
    if (TARGET_LEVELS.includes(level)) ratio.met = ratio.p99 <= TARGET_P99 && ratio.p999 <= TARGET_P999;
    return ratio;
  });
}

export const verdict = (r: Ratio): string =>
  r.met === undefined ? '(none at this load)' : `${r.met ? 'met' : 'missed'}${r.suspect ? ' (suspect: warnings at this load)' : ''}`;

export function ratioTable(rs: Ratio[]): string {
  return table(
    [
      'load',
      'keyward/noop p99',
      'keyward/noop p99.9',
      'floor/noop p99',
      'floor/noop p99.9',
      `target (p99 ≤ ${TARGET_P99}×, p99.9 ≤ ${TARGET_P999}×)`,
    ],
    rs.map((r) => [`${r.level} %`, r.p99.toFixed(2), r.p999.toFixed(2), r.floorP99.toFixed(2), r.floorP999.toFixed(2), verdict(r)]),
  );
}

export function gcTable(runs: RunResult[]): string {
  return table(
    ['load', 'server', 'GCs', 'scavenges', 'mark-compacts', 'pause total ms', 'longest ms', 'heap MB/s', 'bytes per allowed Check'],
    runs.map((r) => {
      const other = r.gc.count - (r.gc.byKind.s?.count ?? 0) - (r.gc.byKind.mc?.count ?? 0);
      return [
        `${r.level} %${r.level === GC_LEVEL ? ' *' : ''}`,
        r.server,
        String(r.gc.count),
        String(r.gc.byKind.s?.count ?? 0),
        `${r.gc.byKind.mc?.count ?? 0}${other ? ` (+${other} other)` : ''}`,
        r.gc.totalPauseMs.toFixed(1),
        r.gc.longestPauseMs.toFixed(1),
        r.gc.allocatedPerSecond === undefined ? 'n/a' : (r.gc.allocatedPerSecond / 1e6).toFixed(1),
        r.bytesPerCheck === undefined ? 'n/a (fewer than 2 GCs)' : int(r.bytesPerCheck),
      ];
    }),
  );
}

/** The whole run's figures for the BENCH_RESULT line. */
export function resultJson(capacity: number, runs: RunResult[], rs: Ratio[], extra: Record<string, unknown>): Record<string, unknown> {
  const round = (n: number | undefined, d = 3) => (n === undefined ? null : Number(n.toFixed(d)));
  return {
    latency: {
      noopCapacityRps: Math.round(capacity),
      seconds: SECONDS,
      ...extra,
      runs: runs.map((r) => ({
        level: r.level,
        rate: r.rate,
        server: r.server,
        achievedRps: round(r.gen.achievedRate, 1),
        due: r.gen.due,
        answered: r.gen.answered,
        allowed: r.gen.allowed,
        errors: r.gen.errors,
        unanswered: r.gen.unanswered,
        p50Ms: round(r.gen.latency.p50Ms),
        p90Ms: round(r.gen.latency.p90Ms),
        p99Ms: round(r.gen.latency.p99Ms),
        p999Ms: round(r.gen.latency.p999Ms),
        maxMs: round(r.gen.latency.maxMs),
        serviceP99Ms: round(r.gen.service.p99Ms),
        answeredInWindow: r.gen.answeredInWindow,
        allowedInWindow: r.gen.allowedInWindow,
        generatorCpuUsPerRequest: round(r.gen.cpuUsPerRequest, 1),
        lagP99Ms: round(r.gen.lag.p99Ms),
        lagMaxMs: round(r.gen.lag.maxMs),
        maxInFlight: r.gen.maxInFlight,
        gcCount: r.gc.count,
        gcPauseTotalMs: round(r.gc.totalPauseMs, 1),
        gcPauseLongestMs: round(r.gc.longestPauseMs, 1),
        gcByKind: r.gc.byKind,
        heapBytesPerSecond: round(r.gc.allocatedPerSecond, 0),
        bytesPerAllowedCheck: round(r.bytesPerCheck, 0),
        warnings: warnings(r),
      })),
      ratios: rs.map((r) => ({
        level: r.level,
        keywardNoopP99: round(r.p99),
        keywardNoopP999: round(r.p999),
        floorNoopP99: round(r.floorP99),
        floorNoopP999: round(r.floorP999),
        target: r.met === undefined ? null : r.met ? 'met' : 'missed',
        suspect: r.suspect,
      })),
    },
  };
}
