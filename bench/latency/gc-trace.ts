/**
 * Garbage collections of a server started with `--trace-gc-nvp`, read from its stdout.
 *
 * V8 (Node 20, V8 11.3) prints one line per collection, flushed as a whole line (each
 * well under PIPE_BUF, so it never splits a JSON log line of keyward's):
 *   [pid:0x…]   1234 ms: pause=0.4 mutator=15.5 gc=s … allocated=4074104 promoted=0 …
 * `pause` is the main-thread pause in ms (the same figure `--trace-gc` prints as
 * "Scavenge … MB, 0.45 / 0.00 ms"; with both flags V8 prints only this form), `gc` the
 * kind (s: scavenge, mc: mark-compact, mmc: minor mark-compact), and `allocated` the
 * bytes allocated on the V8 heap since the previous collection: `calibrateAllocated`
 * checks that on this Node. Off-heap ArrayBuffer backing stores (Buffer contents) are
 * not in it. Plain `--trace-gc` lines are parsed too (pause only).
 *
 * The line's time is ms since the isolate started; it is mapped to epoch ms with the
 * smallest (arrival time − line time) seen, i.e. assuming the fastest-delivered line
 * came at once. Lines reach this process within milliseconds (the parent is idle while
 * the forked generator works), so the window's edges are good to a few ms.
 */
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';

export interface GcEvent {
  /** ms since the server's isolate started. */
  t: number;
  kind: string;
  pauseMs: number;
  allocated?: number;
}

export interface GcWindow {
  count: number;
  totalPauseMs: number;
  longestPauseMs: number;
  byKind: Record<string, { count: number; totalPauseMs: number; longestPauseMs: number }>;
  /** V8 heap bytes allocated per second over the window (between its first and last collection). */
  allocatedPerSecond: number | undefined;
}

const NVP = /^\[\d+:0x[0-9a-f]+\]\s+([\d.]+) ms: pause=([\d.]+) .*?\bgc=(\w+)\b.*?\ballocated=(-?\d+)/;
const PLAIN =
  /^\[\d+:0x[0-9a-f]+\]\s+([\d.]+) ms: ([A-Za-z -]+?)(?: \(\w+\))? [\d.]+ \([\d.]+\) -> [\d.]+ \([\d.]+\) MB, ([\d.]+) \/ [\d.]+ ms/;
const KIND: Record<string, string> = { Scavenge: 's', 'Mark-Compact': 'mc', 'Mark-sweep': 'mc', 'Minor Mark-Compact': 'mmc' };

export function parseGcLine(line: string): GcEvent | undefined {
  const n = NVP.exec(line);
  if (n) return { t: Number(n[1]), pauseMs: Number(n[2]), kind: n[3]!, allocated: Number(n[4]) };
  const p = PLAIN.exec(line);
  if (p) return { t: Number(p[1]), pauseMs: Number(p[3]), kind: KIND[p[2]!] ?? p[2]! };
  return undefined;
}

/** Collects the collections a process reports on `stdout` from now on. */
export class GcTrace {
  readonly events: GcEvent[] = [];
  /** epoch ms − line ms, the smallest seen. */
  private offset = Infinity;
  private partial = '';

  constructor(stdout: Readable) {
    stdout.on('data', (d: Buffer | string) => {
      const arrived = performance.timeOrigin + performance.now();
      const lines = (this.partial + String(d)).split('\n');
      this.partial = lines.pop()!;
      for (const l of lines) {
        const e = parseGcLine(l);
        if (!e) continue;
        this.events.push(e);
        this.offset = Math.min(this.offset, arrived - e.t);
      }
    });
  }

  /** The collections that ended within [startMs, endMs] (epoch ms). */
  between(startMs: number, endMs: number): GcEvent[] {
    return this.events.filter((e) => e.t + this.offset >= startMs && e.t + this.offset <= endMs);
  }

  summarize(startMs: number, endMs: number): GcWindow {
    const events = this.between(startMs, endMs);
    const byKind: GcWindow['byKind'] = {};
    for (const e of events) {
      const k = (byKind[e.kind] ??= { count: 0, totalPauseMs: 0, longestPauseMs: 0 });
      k.count++;
      k.totalPauseMs += e.pauseMs;
      k.longestPauseMs = Math.max(k.longestPauseMs, e.pauseMs);
    }
    // Allocation between the first and the last collection of the window: the sum of
    // `allocated` of every collection but the first, over the time between them. This
    // leaves out the partial young generations at both edges.
    const withAlloc = events.filter((e) => e.allocated !== undefined);
    let allocatedPerSecond: number | undefined;
    if (withAlloc.length >= 2) {
      const span = withAlloc[withAlloc.length - 1]!.t - withAlloc[0]!.t;
      const bytes = withAlloc.slice(1).reduce((s, e) => s + e.allocated!, 0);
      if (span > 0) allocatedPerSecond = (bytes / span) * 1000;
    }
    return {
      count: events.length,
      totalPauseMs: events.reduce((s, e) => s + e.pauseMs, 0),
      longestPauseMs: events.reduce((m, e) => Math.max(m, e.pauseMs), 0),
      byKind,
      allocatedPerSecond,
    };
  }
}

/**
 * Checks what `allocated=` counts on this Node: two runs allocating 100,000 and 300,000
 * arrays of 100 small integers (a JSArray of 4 words plus a FixedArray of 2 + 100
 * words: 848 bytes without pointer compression, as Node builds V8) and a run allocating
 * 1,000-byte Buffers; the difference between the runs' sums per object.
 */
export function calibrateAllocated(): { perArray: number; expectedPerArray: number; perKbBuffer: number } {
  const sum = (code: string) => {
    const r = spawnSync(process.execPath, ['--trace-gc-nvp', '-e', code], { encoding: 'utf8' });
    return r.stdout
      .split('\n')
      .map(parseGcLine)
      .reduce((s, e) => s + (e?.allocated ?? 0), 0);
  };
  const arrays = (n: number) => sum(`let k; for (let i = 0; i < ${n}; i++) k = new Array(100).fill(i);`);
  const buffers = (n: number) => sum(`let k; for (let i = 0; i < ${n}; i++) k = Buffer.alloc(1000);`);
  return {
    perArray: (arrays(300_000) - arrays(100_000)) / 200_000,
    expectedPerArray: 848,
    perKbBuffer: (buffers(300_000) - buffers(100_000)) / 200_000,
  };
}
