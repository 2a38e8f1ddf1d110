/**
 * The one Redis connection policy of keyward, shared by the rate limiter and the quota:
 * fail fast, reconnect in the background, and report failures once per outage.
 */
import Redis from 'ioredis';
import { withDeadline } from './deadline';

export interface RedisConnectionOptions {
  /** redis:// or rediss:// URL. */
  url: string;
  /** CLIENT SETNAME of the connection (`keyward-ratelimit`, `keyward-quota`). */
  connectionName: string;
  /** A command without a reply by then fails (stall-tolerant, ./deadline). Default 100. */
  commandTimeoutMs?: number;
  /** Default 1000; calls wait at most this long for the first connection attempt. */
  connectTimeoutMs?: number;
  /** No byte from Redis for this long while commands wait: the connection is dropped and reopened. Default 1000. */
  socketTimeoutMs?: number;
  /** Redis failures, once per outage (a throwing callback is ignored). */
  onError?: (e: unknown) => void;
}

/**
 * Failures of one connection: `errors` counts failed commands; onError hears of the
 * first failure after the connection was ready or a command last succeeded.
 */
export class RedisFailureTracker {
  /** Redis failed and has not answered since. */
  private failing = false;
  /** Failed commands (the users' `redisErrors`). */
  errors = 0;

  constructor(private readonly onError: (e: unknown) => void = () => undefined) {}

  /** A command failed: counted, and reported unless this outage was already. */
  failed(e: unknown): void {
    this.errors++;
    this.report(e);
  }

  /** A failure that is not a command's (the client's own error events): reported once per outage, not counted. */
  report(e: unknown): void {
    if (this.failing) return;
    this.failing = true;
    try {
      this.onError(e);
    } catch {
      // A logger that throws must not take the caller down.
    }
  }

  /** Redis answered: the next failure is a new outage. */
  succeeded(): void {
    this.failing = false;
  }
}

/**
 * A Redis client under the connection policy, or a client shared by the caller.
 *
 * Contract of an own client (open()):
 *  - no offline queue and one retry per request: a command fails at once while the
 *    connection is down; commands cut off by a lost connection are never resent (the
 *    request was already decided as failed);
 *  - call() bounds each command by commandTimeoutMs (ioredis's own timeout, at least
 *    1 s, is a backstop);
 *  - a connection silent for socketTimeoutMs while commands wait is dropped and
 *    reopened (a partition leaves the socket open but dead);
 *  - reconnects in the background, backoff 100 ms doubling to at most 2 s;
 *  - calls wait for the first connection attempt to settle (ready, failed, or
 *    connectTimeoutMs), so a replica starting up does not fall back;
 *  - the client's error events go to the failure tracker; 'ready' clears it;
 *  - close() quits (or disconnects a dead connection).
 * A shared client (wrap()) gets the deadlines only, and close() leaves it open.
 */
export class RedisConnection {
  /** Pending while an own client's first connection attempt is under way. */
  private startup: Promise<void> | null = null;
  private closed = false;

  private constructor(
    readonly client: Redis,
    readonly commandTimeoutMs: number,
    readonly failures: RedisFailureTracker,
    private readonly own: boolean,
  ) {}

  static open(opts: RedisConnectionOptions): RedisConnection {
    const commandTimeoutMs = opts.commandTimeoutMs ?? 100;
    const connectTimeout = opts.connectTimeoutMs ?? 1000;
    const client = new Redis(opts.url, {
      commandTimeout: Math.max(1000, 10 * commandTimeoutMs),
      connectTimeout,
      socketTimeout: opts.socketTimeoutMs ?? 1000,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times - 1, 5), 2000),
      connectionName: opts.connectionName,
      // close() of a dead connection: ioredis would wait 2 s for a socket already closed.
      disconnectTimeout: 100,
    });
    const connection = new RedisConnection(client, commandTimeoutMs, new RedisFailureTracker(opts.onError), true);
    client.on('error', (e: unknown) => connection.failures.report(e));
    client.on('ready', () => connection.failures.succeeded());
    // Commands written before a connection was lost: ioredis drops them at the reconnect
    // without settling them, so only their ref'd commandTimeout timer (1 s or more) would,
    // outliving close(). They are not resent (the contract above): fail them now.
    client.on('close', () => {
      for (let item = client.commandQueue.shift(); item; item = client.commandQueue.shift()) {
        item.command.reject(new Error('Connection is closed.'));
      }
    });
    connection.startup = new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        client.off('ready', done);
        client.off('close', done);
        connection.startup = null;
        resolve();
      };
      const timer = setTimeout(done, connectTimeout);
      timer.unref();
      client.once('ready', done);
      client.once('close', done);
    });
    return connection;
  }

  /** A client the caller owns: deadlines and failure tracking only; close() leaves it open. */
  static wrap(client: Redis, opts: { commandTimeoutMs?: number; onError?: (e: unknown) => void } = {}): RedisConnection {
    return new RedisConnection(client, opts.commandTimeoutMs ?? 100, new RedisFailureTracker(opts.onError), false);
  }

  /** Resolves once an own client's first connection attempt has settled. */
  async ready(): Promise<void> {
    if (this.startup) await this.startup;
  }

  /** Runs one command within the deadline, after the first connection attempt settled. Failures are not tracked here. */
  async call<T>(command: (client: Redis) => Promise<T>): Promise<T> {
    if (this.startup) await this.startup;
    return withDeadline(command(this.client), this.commandTimeoutMs);
  }

  async close(): Promise<void> {
    if (this.closed || !this.own) return;
    this.closed = true;
    if (this.client.status === 'ready') {
      try {
        await this.client.quit();
        return;
      } catch {
        // Lost meanwhile: disconnect below.
      }
    }
    this.client.disconnect();
  }
}
