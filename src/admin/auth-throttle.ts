/**
 * Throttles repeated failed KeyAdmin authentications per peer host (brute force).
 *
 * Contract:
 *  - A peer host (the address without its port) that fails `maxFailures` times within
 *    `windowMs` is blocked for `blockMs`: failure() returns true for the failure that
 *    starts the block (the caller audits it once), and blockedForMs() answers the
 *    time left, during which calls are refused before their credential is checked.
 *  - A success clears the host's failures. A block ends on its own; failures after it
 *    count afresh.
 *  - At most `maxPeers` hosts are remembered (the oldest goes first), so a flood of
 *    addresses cannot grow memory without bound. maxFailures 0 turns throttling off.
 *  - Time is the caller's (an injected clock), in ms.
 */
import { MapCursor } from '../util/map-cursor';

export interface AuthThrottleOptions {
  maxFailures: number;
  windowMs: number;
  blockMs: number;
  maxPeers?: number;
}

interface PeerState {
  windowStart: number;
  failures: number;
  blockedUntil: number;
}

/** The host of a gRPC peer string: `ipv4:10.0.0.1:5000`, `ipv6:[::1]:5000`, `10.0.0.1:5000`, `unix:/path`. */
export function peerHost(peer: string): string {
  const p = peer.replace(/^(ipv4|ipv6):/, '');
  const v6 = /^\[([^\]]*)\](?::\d+)?$/.exec(p);
  if (v6) return v6[1]!;
  const m = /^(.*):\d+$/.exec(p);
  return m && !m[1]!.includes(':') ? m[1]! : p;
}

export class AuthThrottle {
  private readonly peers = new Map<string, PeerState>();
  private readonly oldest = new MapCursor(this.peers);

  constructor(private readonly o: AuthThrottleOptions) {}

  /** ms until `host` may try again (0: now). */
  blockedForMs(host: string, nowMs: number): number {
    const s = this.peers.get(host);
    return s && s.blockedUntil > nowMs ? s.blockedUntil - nowMs : 0;
  }

  /** Counts a failure; true when it starts a block. */
  failure(host: string, nowMs: number): boolean {
    if (this.o.maxFailures <= 0) return false;
    let s = this.peers.get(host);
    if (!s) {
      if (this.peers.size >= (this.o.maxPeers ?? 10_000)) {
        const c = this.oldest.current();
        if (c) {
          this.oldest.mutated(c[0]);
          this.peers.delete(c[0]);
        }
      }
      s = { windowStart: nowMs, failures: 0, blockedUntil: 0 };
      this.peers.set(host, s);
      this.oldest.mutated(host);
    }
    if (s.blockedUntil > nowMs) return false;
    if (nowMs - s.windowStart >= this.o.windowMs || s.blockedUntil > 0) {
      s.windowStart = nowMs;
      s.failures = 0;
      s.blockedUntil = 0;
    }
    s.failures++;
    if (s.failures < this.o.maxFailures) return false;
    s.blockedUntil = nowMs + this.o.blockMs;
    return true;
  }

  success(host: string): void {
    if (this.peers.has(host)) {
      this.oldest.mutated(host);
      this.peers.delete(host);
    }
  }
}
