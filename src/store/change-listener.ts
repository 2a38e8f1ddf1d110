/**
 * Fleet-wide invalidation on PostgreSQL: every keyward process LISTENs on
 * CHANGES_CHANNEL, where KeyAdmin announces each committed change (see Repos.announce),
 * and drops the affected cache entries at once.
 *
 * Contract:
 *  - One dedicated connection (application_name `keyward-listener`), outside the pool.
 *  - A dropped connection is re-established with backoff (250 ms doubling to 5 s).
 *    onState(false) is called when it drops and onState(true) once it listens again;
 *    the caller shortens its cache lifetime in between and clears the cache on
 *    reconnect, since notifications sent meanwhile were missed.
 *  - Payloads are JSON {from, changes: [{type: 'key'|'org', id}]}; `from` names the
 *    announcing process (PROCESS_ID), which ignores its own announcements (it applied
 *    them already). Anything else is ignored.
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import type { DatabaseConfig } from '../config';

/** True when other processes' changes can be heard on this database (PostgreSQL); SQLite has one process. */
export function hearsChanges(database: DatabaseConfig): boolean {
  return database.kind === 'postgres';
}

/** This process, in announcements. */
export const PROCESS_ID = randomBytes(8).toString('hex');

export function announcement(changes: readonly Change[]): string {
  return JSON.stringify({ from: PROCESS_ID, changes: changes.map((c) => ({ type: c.type, id: c.id })) });
}

export interface Change {
  type: 'key' | 'org';
  id: string;
}

export interface ChangeListenerOptions {
  url: string;
  channel: string;
  onChanges(changes: Change[]): void;
  onState(connected: boolean): void;
  onError?(e: unknown): void;
}

const ID = /^(key|org)_[0-9a-z]{25}$/;

/** The changes another process announced; [] for this process's own or a bad payload. */
export function parseChanges(payload: string | undefined, self: string = PROCESS_ID): Change[] {
  try {
    const m = JSON.parse(payload ?? '') as { from?: unknown; changes?: unknown } | null;
    if (m === null || typeof m !== 'object' || m.from === self) return [];
    const list: unknown = m.changes;
    if (!Array.isArray(list)) return [];
    return (list as unknown[]).filter((item): item is Change => {
      if (typeof item !== 'object' || item === null) return false;
      const c = item as { type?: unknown; id?: unknown };
      return (c.type === 'key' || c.type === 'org') && typeof c.id === 'string' && ID.test(c.id) && c.id.startsWith(c.type);
    });
  } catch {
    return [];
  }
}

export class ChangeListener {
  private client: Client | undefined;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private backoffMs = 250;
  connected = false;
  /** Connections made after the first. */
  reconnects = 0;
  private everConnected = false;

  constructor(private readonly options: ChangeListenerOptions) {}

  /** Connects once; on failure keeps retrying in the background. Never rejects. */
  async start(): Promise<void> {
    await this.connect();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = new Client({ connectionString: this.options.url, application_name: 'keyward-listener', connectionTimeoutMillis: 2000 });
    this.client = client;
    const lost = (e?: unknown) => {
      if (this.client !== client) return;
      this.client = undefined;
      client.removeAllListeners();
      client.on('error', () => undefined);
      client.end().catch(() => undefined);
      if (e !== undefined) this.options.onError?.(e);
      if (this.connected) {
        this.connected = false;
        this.options.onState(false);
      }
      this.schedule();
    };
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', (n) => {
      if (n.channel !== this.options.channel) return;
      const changes = parseChanges(n.payload);
      if (changes.length) this.options.onChanges(changes);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${this.options.channel}`);
    } catch (e) {
      lost(e);
      return;
    }
    if (this.everConnected) this.reconnects++;
    this.everConnected = true;
    this.backoffMs = 250;
    this.connected = true;
    this.options.onState(true);
  }

  private schedule(): void {
    if (this.stopped || this.timer) return;
    const wait = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 5000);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.connect();
    }, wait);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const c = this.client;
    this.client = undefined;
    if (c) {
      c.removeAllListeners();
      c.on('error', () => undefined);
      await c.end().catch(() => undefined);
    }
  }
}
