/**
 * KeyAdmin calls that are safe to retry (Google AIP-155 `request_id`).
 *
 * Contract:
 *  - A call carries a RetrySafeCall in its CallContext (`caller.retry`) when its
 *    request has a request_id; an empty request_id means none (the call is not remembered).
 *  - The caller is the principal's actor: `admin` for the administrator token,
 *    `key:<id>` for an organization's admin key. Another caller's request ids are
 *    independent.
 *  - A record is kept for REQUEST_WINDOW_MS (24 h) from the first call. Within it, the
 *    same caller and request_id with the same rpc and arguments (argumentsHash) get the
 *    first call's response, byte for byte, and nothing is written (no change, no audit
 *    row, no announcement). With another rpc or other arguments: invalid_argument
 *    naming `request_id`, violation `request_id_reused`. After the window the record
 *    counts as absent (and is purged): the request_id may start a new call.
 *  - The record is written inside the change's own transaction (AdminContext.tx calls
 *    begin() before the change and finish() after it), so a change is remembered if and
 *    only if it committed. begin() claims (caller, request_id) at once: a concurrent
 *    duplicate waits (PostgreSQL) or runs after (SQLite) and then fails on the primary
 *    key; AdminContext.tx runs it again, and it replays.
 *  - Only calls that succeed are remembered: a failed call may be retried and is run again.
 *  - A response's secret (CreateKey, RotateKey) is stored apart from the response,
 *    sealed (src/keys/secret-box.ts, purpose 'admin-requests') with the caller, request_id
 *    and rpc as additional data; purge() deletes whole records, sealed secret included.
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../errors/domain';
import type { AdminRequestRecord } from '../store/entities';
import type { Repos, Store } from '../store/store';
import type { Clock } from '../util/clock';
import type { CallContext } from './principal';
import type { SecretBox } from '../keys/secret-box';

/** How long a retry-safe call is remembered: 24 hours. */
export const REQUEST_WINDOW_MS = 86_400_000;
export const REQUEST_ID_MAX = 128;
const REQUEST_ID = /^[A-Za-z0-9_.:-]+$/;
export const REUSED = 'request_id_reused';

/** What a retry-safe call is, and how its response is remembered. */
export interface RetrySafeCall {
  /** The RPC's name, e.g. `CreateKey`. */
  rpc: string;
  requestId: string;
  /** argumentsHash() of the request without its request_id. */
  argsHash: string;
  /**
   * The response the call sends, built from the result of its transaction (inside
   * it, so a failure rolls the change back): the encoded message without its secret,
   * and the secret apart.
   */
  remember(result: unknown): RememberedResponse;
}

export interface RememberedResponse {
  response: Uint8Array;
  secret?: string;
}

/** Thrown out of AdminContext.tx (the transaction wrote nothing) when the call was made before. */
export class ReplaySignal extends Error {
  constructor(readonly replay: RememberedResponse) {
    super('replayed');
  }
}

/** The request_id as read from a request: undefined when empty; invalid_argument when malformed. */
export function requestId(value: string): string | undefined {
  if (value === '') return undefined;
  if (value.length > REQUEST_ID_MAX)
    throw new InvalidArgumentError('request_id', `must be at most ${REQUEST_ID_MAX} characters`, 'too_long');
  if (!REQUEST_ID.test(value))
    throw new InvalidArgumentError('request_id', 'must hold only the characters A-Z a-z 0-9 _ . : -', 'invalid_characters');
  return value;
}

/**
 * JSON with object keys sorted (map order on the wire does not matter), undefined
 * members dropped, a Date as its milliseconds (an invalid one too) and bytes as hex.
 */
function canonical(value: unknown): string {
  if (value instanceof Date) return `{"$date":${String(value.getTime())}}`;
  if (value instanceof Uint8Array) return `{"$bytes":"${Buffer.from(value).toString('hex')}"}`;
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
}

/** SHA-256 (hex) of the arguments' canonical JSON (e.g. a decoded request without its request_id). */
export function argumentsHash(args: unknown): string {
  return createHash('sha256').update(canonical(args), 'utf8').digest('hex');
}

export interface AdminRequestsDeps {
  store: Store;
  clock: Clock;
  secretBox: SecretBox;
}

export class AdminRequests {
  constructor(private readonly deps: AdminRequestsDeps) {}

  /** Outside a transaction (before validation): the remembered response of this call, if any. */
  async lookup(caller: CallContext, call: RetrySafeCall): Promise<RememberedResponse | undefined> {
    const record = await this.deps.store.read((repos) => repos.adminRequests.get(caller.principal.actor, call.requestId));
    return record && this.fresh(record) ? this.replayOf(record, caller, call) : undefined;
  }

  /** Inside the change's transaction, first: the remembered response, or claims the request id. */
  async begin(repos: Repos, caller: CallContext, call: RetrySafeCall): Promise<RememberedResponse | undefined> {
    const actor = caller.principal.actor;
    const record = await repos.adminRequests.get(actor, call.requestId);
    if (record && this.fresh(record)) return this.replayOf(record, caller, call);
    // A record past its window that the purge has not reached yet: gone for good.
    if (record) await repos.adminRequests.removeBefore(this.cutoff(), { caller: actor, requestId: call.requestId });
    await repos.adminRequests.claim({
      caller: actor,
      requestId: call.requestId,
      rpc: call.rpc,
      argsHash: call.argsHash,
      response: '',
      sealedSecret: null,
      createdAt: this.deps.clock.now(),
    });
    return undefined;
  }

  /** Inside the change's transaction, last: stores the response (and seals its secret). */
  async finish(repos: Repos, caller: CallContext, call: RetrySafeCall, result: unknown): Promise<void> {
    const { response, secret } = call.remember(result);
    const sealed = secret ? this.deps.secretBox.seal(secret, this.sealingContext(caller, call)) : null;
    await repos.adminRequests.complete(caller.principal.actor, call.requestId, Buffer.from(response).toString('base64'), sealed);
  }

  /** Deletes every record past its window, sealed secrets with them; the number deleted. */
  purge(): Promise<number> {
    return this.deps.store.transaction((repos) => repos.adminRequests.removeBefore(this.cutoff()));
  }

  private cutoff(): Date {
    return new Date(this.deps.clock.now().getTime() - REQUEST_WINDOW_MS);
  }

  private fresh(record: AdminRequestRecord): boolean {
    return record.createdAt.getTime() > this.cutoff().getTime();
  }

  private replayOf(record: AdminRequestRecord, caller: CallContext, call: RetrySafeCall): RememberedResponse {
    if (record.rpc !== call.rpc || record.argsHash !== call.argsHash) {
      throw new InvalidArgumentError('request_id', 'was already used for another call (other RPC or arguments)', REUSED);
    }
    const response = Buffer.from(record.response, 'base64');
    if (!record.sealedSecret) return { response };
    const secret = this.deps.secretBox.open(record.sealedSecret, this.sealingContext(caller, call));
    // Only when the hash secret changed twice within the window: the secret is lost.
    if (secret === undefined) {
      throw new InvalidArgumentError(
        'request_id',
        "the first call's secret can no longer be recovered; use a new request_id",
        'request_id_unrecoverable',
      );
    }
    return { response, secret };
  }

  private sealingContext(caller: CallContext, call: RetrySafeCall): string {
    return `${caller.principal.actor}\n${call.requestId}\n${call.rpc}`;
  }
}
