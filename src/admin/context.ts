/**
 * What every KeyAdmin resource module shares: the transaction (with its change
 * announcements), the access checks that audit their denials, and the audit-row builder.
 */
// First: MikroORM is loaded with its AsyncLocalStorage instances recorded (see there).
import '../store/orm-async-context';
import type { Clock } from '../util/clock';
import { DomainError, PermissionDeniedError } from '../errors/domain';
import type { ApiKeyRecord, OrganizationRecord } from '../store/entities';
import type { NewAuditEvent, Repos, Store } from '../store/store';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import { announcement } from '../store/change-listener';
import type { CallContext } from './principal';
import { ReplaySignal, type AdminRequests, type RetrySafeCall } from './requests';

/** A committed change that cached decisions may depend on. */
export type AdminChange = { type: 'key'; id: string; keyHash: string } | { type: 'org'; id: string };

/** What an audit row is about. */
export interface AuditTarget {
  organizationId?: string;
  keyId?: string;
}

/** An audit row of `caller`'s `action` at `at`. */
export function auditEvent(
  at: Date,
  caller: CallContext,
  action: string,
  target: AuditTarget,
  outcome: 'success' | 'denied',
  reason: string | null,
): NewAuditEvent {
  return {
    at,
    actor: caller.principal.actor,
    action,
    organizationId: target.organizationId ?? null,
    keyId: target.keyId ?? null,
    outcome,
    reason,
    peer: caller.peer,
  };
}

export interface AdminContextDeps {
  store: Store;
  clock: Clock;
  /** Told after each committed change, so caches can drop what changed at once. */
  onChange?: (change: AdminChange) => void;
  /** Remembers retry-safe calls (caller.retry); without it request ids are ignored. */
  requests?: AdminRequests;
}

/** Adds a change to the transaction's announcement (and to onChange after commit). */
export type RecordChange = (change: AdminChange) => void;

/**
 * The shared services of the resource modules.
 *
 * Contract:
 *  - tx() runs one transaction; audit rows appended inside commit with the change.
 *    Changes recorded through `changed` are announced to other processes in the same
 *    transaction and passed to onChange only after the commit.
 *  - A denial (requireRoot, requireOrg, or loadKey/loadOrg inside tx) is audited in a
 *    transaction of its own, after any rollback, and thrown as PermissionDeniedError.
 *  - A scoped (organization) caller cannot tell another organization's key from a
 *    missing one: both are denied.
 *  - A retry-safe call (caller.retry, ./requests.ts): its first tx() is the change that
 *    is remembered, and must return what the RPC's response is built from. If the call
 *    was made before, tx() writes nothing and throws ReplaySignal with the first
 *    response; a concurrent duplicate that lost the race is run once more, and replays.
 */
export class AdminContext {
  constructor(private readonly deps: AdminContextDeps) {}

  get store(): Store {
    return this.deps.store;
  }

  now(): Date {
    return this.deps.clock.now();
  }

  /** An audit row of `caller`'s `action`, now. */
  event(caller: CallContext, action: string, target: AuditTarget, outcome: 'success' | 'denied', reason: string | null): NewAuditEvent {
    return auditEvent(this.now(), caller, action, target, outcome, reason);
  }

  /** Audits a permission denial in its own transaction and returns the error to throw. */
  async denied(caller: CallContext, action: string, target: AuditTarget): Promise<DomainError> {
    await this.deps.store.transaction((repos) => {
      repos.audit.append(this.event(caller, action, target, 'denied', 'permission_denied'));
      return Promise.resolve();
    });
    return new PermissionDeniedError();
  }

  /** Only the administrator token may do `action`. */
  async requireRoot(caller: CallContext, action: string, target: { organizationId?: string } = {}): Promise<void> {
    if (caller.principal.kind !== 'root') throw await this.denied(caller, action, target);
  }

  /** The caller may act on `organizationId` (root: any; a scoped key: its own). */
  async requireOrg(caller: CallContext, action: string, organizationId: string): Promise<void> {
    if (caller.principal.kind === 'org' && caller.principal.organizationId !== organizationId) {
      throw await this.denied(caller, action, { organizationId });
    }
  }

  /** Inside tx(): a key the caller may act on; key_not_found for root, a denial outside the caller's organization. */
  async loadKey(repos: Repos, caller: CallContext, id: string, action: string): Promise<ApiKeyRecord> {
    const key = await repos.keys.get(id);
    if (caller.principal.kind === 'org' && (!key || key.organizationId !== caller.principal.organizationId)) {
      // The audit row names the key's organization, so its owners see the attempt.
      throw new DeniedSignal(action, { keyId: id, organizationId: key?.organizationId });
    }
    if (!key) throw new DomainError('key_not_found');
    return key;
  }

  /** Inside tx(): an organization the caller may act on (locked with forUpdate); organization_not_found if missing. */
  async loadOrg(repos: Repos, caller: CallContext, id: string, action: string, forUpdate = false): Promise<OrganizationRecord> {
    if (caller.principal.kind === 'org' && caller.principal.organizationId !== id) throw new DeniedSignal(action, { organizationId: id });
    const org = forUpdate ? await repos.orgs.getForUpdate(id) : await repos.orgs.get(id);
    if (!org) throw new DomainError('organization_not_found');
    return org;
  }

  /** Inside tx(): a key the caller may act on, with its organization. */
  async loadKeyAndOrg(
    repos: Repos,
    caller: CallContext,
    keyId: string,
    action: string,
  ): Promise<{ key: ApiKeyRecord; org: OrganizationRecord }> {
    const key = await this.loadKey(repos, caller, keyId, action);
    const org = await repos.orgs.get(key.organizationId);
    if (!org) throw new DomainError('organization_not_found');
    return { key, org };
  }

  /** Inside tx(): the error to throw for a denial; tx() audits it after rollback. */
  deniedInTx(action: string, target: AuditTarget): Error {
    return new DeniedSignal(action, target);
  }

  /** Runs a transaction; a denial raised inside is audited after rollback. */
  async tx<T>(caller: CallContext, fn: (repos: Repos, changed: RecordChange) => Promise<T>): Promise<T> {
    const retry = this.takeRetry(caller);
    for (let attempt = 1; ; attempt++) {
      const changes: AdminChange[] = [];
      try {
        const result = await this.deps.store.transaction(async (repos) => {
          if (retry) {
            const replay = await this.deps.requests!.begin(repos, caller, retry);
            if (replay) throw new ReplaySignal(replay);
          }
          const out = await fn(repos, (change) => changes.push(change));
          if (retry) await this.deps.requests!.finish(repos, caller, retry, out);
          // Other processes hear of it when (and only if) this commits.
          if (changes.length) await repos.announce(announcement(changes));
          return out;
        });
        // Only after commit: caches drop what changed.
        for (const change of changes) this.deps.onChange?.(change);
        return result;
      } catch (e) {
        if (e instanceof DeniedSignal) throw await this.denied(caller, e.action, e.target);
        // A concurrent duplicate committed the same request id first: run again to replay it.
        if (retry && attempt === 1 && e instanceof UniqueConstraintViolationException) continue;
        throw e;
      }
    }
  }

  /** The call's retry-safe request, for its first tx() only. */
  private takeRetry(caller: CallContext): RetrySafeCall | undefined {
    const retry = caller.retry;
    if (!retry || !this.deps.requests || this.retriesTaken.has(retry)) return undefined;
    this.retriesTaken.add(retry);
    return retry;
  }

  private readonly retriesTaken = new WeakSet<RetrySafeCall>();
}

/** Raised inside a transaction to abort it; audited as a denial after rollback. */
class DeniedSignal extends Error {
  constructor(
    readonly action: string,
    readonly target: AuditTarget,
  ) {
    super('permission_denied');
  }
}
