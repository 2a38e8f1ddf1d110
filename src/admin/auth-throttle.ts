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
  const address = peer.replace(/^(ipv4|ipv6):/, '');
  const v6 = /^\[([^\]]*)\](?::\d+)?$/.exec(address);
  if (v6) return v6[1]!;
  const withPort = /^(.*):\d+$/.exec(address);
  return withPort && !withPort[1]!.includes(':') ? withPort[1]! : address;
}

export class AuthThrottle {
  private readonly peers = new Map<string, PeerState>();
  private readonly oldest = new MapCursor(this.peers);

  constructor(private readonly options: AuthThrottleOptions) {}

  /** ms until `host` may try again (0: now). */
  blockedForMs(host: string, nowMs: number): number {
    const state = this.peers.get(host);
    return state && state.blockedUntil > nowMs ? state.blockedUntil - nowMs : 0;
  }

  /** Counts a failure; true when it starts a block. */
  failure(host: string, nowMs: number): boolean {
    if (this.options.maxFailures <= 0) return false;
    let state = this.peers.get(host);
    if (!state) {
      if (this.peers.size >= (this.options.maxPeers ?? 10_000)) {
        const oldest = this.oldest.current();
        if (oldest) {
          this.oldest.mutated(oldest[0]);
          this.peers.delete(oldest[0]);
        }
      }
      state = { windowStart: nowMs, failures: 0, blockedUntil: 0 };
      this.peers.set(host, state);
      this.oldest.mutated(host);
    }
    if (state.blockedUntil > nowMs) return false;
    if (nowMs - state.windowStart >= this.options.windowMs || state.blockedUntil > 0) {
      state.windowStart = nowMs;
      state.failures = 0;
      state.blockedUntil = 0;
    }
    state.failures++;
    if (state.failures < this.options.maxFailures) return false;
    state.blockedUntil = nowMs + this.options.blockMs;
    return true;
  }

  success(host: string): void {
    if (this.peers.has(host)) {
      this.oldest.mutated(host);
      this.peers.delete(host);
    }
  }
}
