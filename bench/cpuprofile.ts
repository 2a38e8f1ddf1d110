/**
 * Reading V8 .cpuprofile files (from `node --cpu-prof`): self time per sampled node,
 * and busy time by owner (where the sampled code lives: keyward, @grpc/grpc-js, Node's
 * http2, other Node internals, garbage collection, ...).
 */
import { readFileSync } from 'node:fs';

export interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount: number;
  children?: number[];
}
export interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export function loadProfile(file: string): Profile {
  return JSON.parse(readFileSync(file, 'utf8')) as Profile;
}

/** Sampled self time (µs) per node id, and the total. */
export function selfTimes(p: Profile): { self: Map<number, number>; total: number } {
  const self = new Map<number, number>();
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt);
    total += dt;
  }
  return { self, total };
}

/** Where a sampled frame's code lives. */
export function ownerOf(n: ProfileNode): string {
  const u = n.callFrame.url;
  const f = n.callFrame.functionName;
  if (f === '(idle)') return 'idle';
  if (f === '(garbage collector)') return 'garbage collection';
  if (f === '(program)' || f === '(root)') return 'V8 and native (program)';
  if (u.includes('@grpc/grpc-js')) return '@grpc/grpc-js';
  if (/node:internal\/http2|node:internal\/stream_base|node:net/.test(u)) return 'Node http2 and sockets';
  if (/node:internal\/crypto|node:crypto/.test(u)) return 'Node crypto (the HMAC)';
  if (/node:internal\/async_hooks|node:async_hooks/.test(u)) return 'Node async hooks';
  if (u.startsWith('node:')) return 'other Node internals (events, streams, buffers, timers)';
  if (/\/(dist|src)\/(authz|keys|grpc)\//.test(u)) return 'keyward: Check (decode, decide, encode)';
  if (/\/(dist|src)\/(usage|limits)\//.test(u)) return 'keyward: usage and limits';
  if (/\/(dist|src)\//.test(u)) return 'keyward: other';
  if (u.includes('node_modules/')) return 'other dependencies (database drivers, ORM, logging)';
  return 'native code without a script (native calls, regexps, builtins)';
}

/** Busy (non-idle) self time in µs by owner, and the busy total. */
export function busyByOwner(p: Profile): { byOwner: Map<string, number>; busy: number } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const { self } = selfTimes(p);
  const byOwner = new Map<string, number>();
  let busy = 0;
  for (const [id, t] of self) {
    const o = ownerOf(byId.get(id)!);
    if (o === 'idle') continue;
    byOwner.set(o, (byOwner.get(o) ?? 0) + t);
    busy += t;
  }
  return { byOwner, busy };
}
