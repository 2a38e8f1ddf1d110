/**
 * Rotation of the hash secret: KEYWARD_HASH_SECRET (the primary) with
 * KEYWARD_HASH_SECRET_PREVIOUS (the secret being rotated away from).
 */
import type { Logger } from 'pino';
import { createHasher, type CredentialHasher } from '../keys/hash';
import type { Clock } from '../util/clock';
import { describeError } from '../util/logger';
import { PendingFlusher } from '../util/flusher';
import { timerScheduler, type Scheduler } from '../util/scheduler';
import type { Rehash } from '../store/key-lookup';
import type { PreviousSecretLookup } from './cache';

export interface RehashSink {
  rehashKeys(batch: ReadonlyMap<string, Rehash>, secretId: string): Promise<void>;
  countOnSecret(secretId: string, nowMs: number): Promise<{ keys: number; adminTokens: number }>;
}

export interface HashRotationStats {
  /** Usable keys whose stored hash is (or may be) made with the previous secret, at the last count. */
  keysOnPrevious: number;
  /** Admin tokens likewise. */
  adminTokensOnPrevious: number;
  /** Keys whose rewritten hash was written (queued keys, counted when their batch committed). */
  rehashed: number;
  /** Batch writes that failed (their keys were kept for the next one). */
  flushErrors: number;
}

/**
 * Contract:
 *  - New keys and admin tokens are hashed with the primary only.
 *  - A credential is looked up under the primary first; only when that finds nothing
 *    is it hashed with the previous secret and looked up again (the key cache does
 *    this for Checks, AdminService for KeyAdmin authentication).
 *  - A key found under the previous secret has its stored hash rewritten with the
 *    primary (the plaintext is at hand only then): keyFoundByPrevious() queues it, and
 *    flush() writes the queue in one statement, every interval and at shutdown, off the
 *    Check's path. A failed write keeps its keys for the next one. A key another
 *    process already rewrote is left alone.
 *  - The number of usable keys and admin tokens still on the previous secret is counted
 *    every countIntervalMs (metrics read the last count), so operators can see when
 *    the previous secret can be dropped. Without a previous secret nothing is counted
 *    or queued, and the counts stay 0.
 *  - Logs carry the secrets' ids (keys/hash.ts secretId) only: never a secret, a
 *    credential or a hash.
 */
export class HashRotation {
  readonly primary: CredentialHasher;
  /** Undefined unless KEYWARD_HASH_SECRET_PREVIOUS is set. */
  readonly previous: CredentialHasher | undefined;
  readonly stats: HashRotationStats = { keysOnPrevious: 0, adminTokensOnPrevious: 0, rehashed: 0, flushErrors: 0 };
  private readonly pending: PendingFlusher<string, Rehash>;
  private stopCounting: (() => void) | undefined;

  constructor(
    secrets: { primary: Buffer; previous?: Buffer },
    private readonly sink: RehashSink,
    private readonly opts: { clock: Clock; logger: Logger },
  ) {
    this.primary = createHasher(secrets.primary);
    this.previous = secrets.previous && createHasher(secrets.previous);
    this.pending = new PendingFlusher({
      write: (batch) => sink.rehashKeys(batch, this.primary.id),
      onWritten: (batch) => {
        this.stats.rehashed += batch.size;
      },
      onError: (e, batch) => {
        this.stats.flushErrors++;
        this.opts.logger.warn({ err: describeError(e), keys: batch.size }, 'hash secret rotation: rewriting key hashes failed; will retry');
      },
    });
  }

  /** What the key cache needs for lookups under the previous secret (undefined without one). */
  cacheLookup(): PreviousSecretLookup | undefined {
    const previous = this.previous;
    if (!previous) return undefined;
    return {
      digest: (credential) => previous.digest(credential),
      onFoundByPrevious: (id, to, from) => this.keyFoundByPrevious(id, to, from),
    };
  }

  /** Queues a key found under the previous secret: its stored `previousHash` becomes `primaryHash`. */
  keyFoundByPrevious(keyId: string, primaryHash: string, previousHash: string): void {
    if (!this.previous) return;
    this.pending.set(keyId, { from: previousHash, to: primaryHash });
  }

  /** Keys waiting to be rewritten. */
  get size(): number {
    return this.pending.size;
  }

  /** Writes the queued rewrites; concurrent calls share one write. Never rejects. */
  flush(): Promise<void> {
    return this.pending.flush();
  }

  /** Counts what is still on the previous secret (a no-op without one). Never throws. */
  async refreshCounts(): Promise<void> {
    if (!this.previous) return;
    try {
      const n = await this.sink.countOnSecret(this.previous.id, this.opts.clock.now().getTime());
      this.stats.keysOnPrevious = n.keys;
      this.stats.adminTokensOnPrevious = n.adminTokens;
    } catch (e) {
      this.opts.logger.warn({ err: describeError(e) }, 'hash secret rotation: counting keys on the previous secret failed; will retry');
    }
  }

  /** Logs the rotation once, and writes and counts every interval (nothing without a previous secret). */
  start(flushIntervalMs: number, countIntervalMs: number, scheduler: Scheduler = timerScheduler): void {
    this.stop();
    if (!this.previous) return;
    this.opts.logger.info(
      { hashSecretId: this.primary.id, previousHashSecretId: this.previous.id },
      'hash secret rotation: new keys use the primary secret; keys not found under it are looked up under the previous one and rehashed',
    );
    void this.refreshCounts();
    this.pending.start('hash-rotation-flush', flushIntervalMs, scheduler);
    this.stopCounting = scheduler.every('hash-rotation-count', countIntervalMs, () => void this.refreshCounts());
  }

  stop(): void {
    this.pending.stop();
    this.stopCounting?.();
    this.stopCounting = undefined;
  }
}
