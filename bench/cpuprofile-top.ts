/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most
 * self time, and the share of inclusive time spent under chosen frames.
 *
 *   node --import tsx bench/cpuprofile-top.ts <file.cpuprofile> [top=25]
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: cpuprofile-top.ts <file.cpuprofile> [top]');
  process.exit(2);
}
const top = Number(topArg ?? 25);
const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

const self = new Map<number, number>();
let total = 0;
for (let i = 0; i < p.samples.length; i++) {
  const dt = p.timeDeltas[i] ?? 0;
  self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt);
  total += dt;
}
const where = (n: Node) => {
  const url = n.callFrame.url.replace(/^.*\/(node_modules\/)/, '$1').replace(/^.*\/(src|bench|dist)\//, '$1/');
  return `${n.callFrame.functionName || '(anonymous)'} ${url}:${n.callFrame.lineNumber + 1}`;
};
const selfByFrame = new Map<string, number>();
const inclByFrame = new Map<string, number>();
for (const [id, t] of self) {
  const n = byId.get(id)!;
  const k = where(n);
  selfByFrame.set(k, (selfByFrame.get(k) ?? 0) + t);
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const f = where(byId.get(cur)!);
    if (!seen.has(f)) {
      seen.add(f);
      inclByFrame.set(f, (inclByFrame.get(f) ?? 0) + t);
    }
  }
}
const pct = (t: number) => `${((100 * t) / total).toFixed(1).padStart(5)}%`;

// Busy time by owner: where a sampled frame's code lives.
function owner(n: Node): string {
  const u = n.callFrame.url;
  const f = n.callFrame.functionName;
  if (f === '(idle)') return 'idle';
  if (f === '(garbage collector)') return 'garbage collection';
  if (f === '(program)' || f === '(root)') return 'V8 and native (program)';
  if (u.includes('@grpc/grpc-js')) return '@grpc/grpc-js';
  if (/node:internal\/http2|node:internal\/stream_base|node:net/.test(u)) return 'Node http2 and sockets';
  if (u.startsWith('node:')) return 'other Node internals (events, streams, timers, async hooks, crypto)';
  if (/\/(dist|src)\/(authz|keys|grpc)\//.test(u)) return 'keyward: Check (decode, decide, encode)';
  if (/\/(dist|src)\/(usage|limits)\//.test(u)) return 'keyward: usage and limits';
  if (/\/(dist|src)\//.test(u)) return 'keyward: other';
  if (u.includes('node_modules/')) return 'other dependencies (database drivers, ORM, logging)';
  return 'native code without a script (native calls, regexps, builtins)';
}
const byOwner = new Map<string, number>();
let busy = 0;
for (const [id, t] of self) {
  const o = owner(byId.get(id)!);
  byOwner.set(o, (byOwner.get(o) ?? 0) + t);
  if (o !== 'idle') busy += t;
}
console.log(`total sampled ${(total / 1000).toFixed(0)} ms, busy ${(busy / 1000).toFixed(0)} ms`);
console.log('\nbusy time by owner (self time):');
for (const [o, t] of [...byOwner].filter(([o]) => o !== 'idle').sort((a, b) => b[1] - a[1])) console.log(`${((100 * t) / busy).toFixed(1).padStart(5)}%  ${o}`);
console.log('\nself time:');
for (const [k, t] of [...selfByFrame].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(t)}  ${k}`);
console.log('\ninclusive time:');
for (const [k, t] of [...inclByFrame].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(t)}  ${k}`);
