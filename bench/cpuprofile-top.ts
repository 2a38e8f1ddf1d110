/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): the functions with the most
 * self time, and the share of inclusive time spent under chosen frames.
 *
 *   node --import tsx bench/cpuprofile-top.ts <file.cpuprofile> [top=25]
 */
import { busyByOwner, loadProfile, selfTimes, type ProfileNode as Node } from './cpuprofile';

const [file, topArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: cpuprofile-top.ts <file.cpuprofile> [top]');
  process.exit(2);
}
const top = Number(topArg ?? 25);
const p = loadProfile(file);
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const { self, total } = selfTimes(p);
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

const { byOwner, busy } = busyByOwner(p);
console.log(`total sampled ${(total / 1000).toFixed(0)} ms, busy ${(busy / 1000).toFixed(0)} ms`);
console.log('\nbusy time by owner (self time):');
for (const [o, t] of [...byOwner].sort((a, b) => b[1] - a[1])) console.log(`${((100 * t) / busy).toFixed(1).padStart(5)}%  ${o}`);
console.log('\nself time:');
for (const [k, t] of [...selfByFrame].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(t)}  ${k}`);
console.log('\ninclusive time:');
for (const [k, t] of [...inclByFrame].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(t)}  ${k}`);
