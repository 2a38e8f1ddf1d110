/** KeyAdmin's audit log: ListAuditEvents, newest first. */
import { InvalidArgumentError } from '../errors/domain';
import type { AuditEventRecord } from '../store/entities';
import type { AdminContext, AuditTarget } from './context';
import { paged, type PageOf, type PageRequest } from './paging';
import type { CallContext } from './principal';
import * as validate from './validate';

/** ListAuditEvents' filters as read from the request: '' (or no time) means no filter. */
export interface AuditQuery extends PageRequest {
  organizationId: string;
  keyId: string;
  action: string;
  /** Inclusive. */
  startTime: Date | undefined;
  /** Exclusive. */
  endTime: Date | undefined;
}

export class AuditLog {
  constructor(private readonly context: AdminContext) {}

  /** Appends a successful `action` of `caller` that changes nothing else (e.g. `console.sign_in`). */
  async record(caller: CallContext, action: string, target: AuditTarget = {}): Promise<void> {
    await this.context.store.transaction((repos) => {
      repos.audit.append(this.context.event(caller, action, target, 'success', null));
      return Promise.resolve();
    });
  }

  /** Root: every event. A scoped caller: its organization's only (asking for another is denied and audited). */
  async list(caller: CallContext, query: AuditQuery): Promise<PageOf<AuditEventRecord>> {
    let organizationId = query.organizationId === '' ? undefined : validate.id(query.organizationId, 'org', 'organization_id');
    const keyId = query.keyId === '' ? undefined : validate.id(query.keyId, 'key', 'key_id');
    const action = validate.filterText(query.action, 'action');
    const startTime = validate.filterTime(query.startTime, 'start_time');
    const endTime = validate.filterTime(query.endTime, 'end_time');
    if (startTime && endTime && startTime.getTime() >= endTime.getTime()) {
      throw new InvalidArgumentError('end_time', 'must be after start_time', 'invalid_range');
    }
    if (caller.principal.kind === 'org') {
      if (organizationId !== undefined) await this.context.requireOrg(caller, 'audit.list', organizationId);
      organizationId = caller.principal.organizationId;
    }
    const filter = { organizationId, keyId, action, from: startTime, to: endTime };
    return paged(
      query,
      'number',
      (event: AuditEventRecord) => Number(event.id),
      (after, limit) => this.context.store.read((repos) => repos.audit.list(filter, { after, limit })),
    );
  }
}
