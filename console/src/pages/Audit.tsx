/** The organization's audit log, newest first: filters by kind (action), key and time range; paged. */
import { useEffect, useRef, useState } from 'preact/hooks';
import { rpc } from '../api';
import { OrgTabs } from '../components/Layout';
import { Field, FormError, useAction } from '../components/forms';
import { formatTime, localInputToIso } from '../format';
import type { AuditEvent, ListAuditEventsResponse } from '../types';

const KNOWN_ACTIONS = [
  'organization.create',
  'organization.update',
  'organization.delete',
  'key.create',
  'key.update',
  'key.revoke',
  'key.rotate',
  'key.disable',
  'key.enable',
  'key.rate_limit_reset',
  'admin.auth_failed',
  'key.revoked_used',
  'key.expired_used',
  'key.disabled_used',
  'key.inactive_org_used',
  'key.rate_limited',
  'org.quota_exceeded',
  'org.quota_threshold',
  'key.expiring',
  'webhook.create',
  'webhook.update',
  'webhook.delete',
  'webhook.paused',
];

interface Filters {
  action: string;
  keyId: string;
  start: string;
  end: string;
}

const PAGE_SIZE = 50;
const FIELDS = ['action', 'key_id', 'start_time', 'end_time', 'page_token'];

export function AuditPage(props: { orgId: string }) {
  const [draft, setDraft] = useState<Filters>({ action: '', keyId: '', start: '', end: '' });
  const [events, setEvents] = useState<AuditEvent[] | null>(null);
  const [next, setNext] = useState('');
  const [applied, setApplied] = useState<Filters>(draft);
  const action = useAction();

  // Only the latest request's answer is shown (an older one may answer last).
  const latest = useRef(0);

  const load = async (f: Filters, pageToken: string) => {
    const seq = ++latest.current;
    const r = await action.run(() => {
      const body: Record<string, unknown> = { organizationId: props.orgId, pageSize: PAGE_SIZE, pageToken };
      if (f.action.trim()) body.action = f.action.trim();
      if (f.keyId.trim()) body.keyId = f.keyId.trim();
      const start = localInputToIso(f.start);
      const end = localInputToIso(f.end);
      if (start) body.startTime = start;
      if (end) body.endTime = end;
      return rpc<ListAuditEventsResponse>('ListAuditEvents', body);
    });
    if (!r || seq !== latest.current) return;
    setEvents((prev) => (pageToken && prev ? [...prev, ...(r.events ?? [])] : (r.events ?? [])));
    setNext(r.nextPageToken ?? '');
    setApplied(f);
  };

  useEffect(() => {
    void load(draft, '');
    // Only on entering the page; filters apply on submit.
  }, [props.orgId]);

  const set = (k: keyof Filters) => (v: string) => setDraft((d) => ({ ...d, [k]: v }));
  return (
    <section>
      <h1>Audit log</h1>
      <OrgTabs orgId={props.orgId} current="audit" />
      <form
        class="card"
        data-testid="audit-filters"
        aria-labelledby="audit-filters-title"
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          void load(draft, '');
        }}
      >
        <h2 id="audit-filters-title">Filters</h2>
        <div class="grid">
          <Field
            id="audit-action"
            name="action"
            label="Kind (action)"
            list="audit-actions"
            value={draft.action}
            onValue={set('action')}
            error={action.error}
          />
          <datalist id="audit-actions">
            {KNOWN_ACTIONS.map((a) => (
              <option key={a} value={a} />
            ))}
          </datalist>
          <Field id="audit-key" name="key_id" label="Key id" value={draft.keyId} onValue={set('keyId')} error={action.error} />
          <Field
            id="audit-start"
            name="start_time"
            label="From (UTC, inclusive)"
            type="datetime-local"
            value={draft.start}
            onValue={set('start')}
            error={action.error}
          />
          <Field
            id="audit-end"
            name="end_time"
            label="Until (UTC, exclusive)"
            type="datetime-local"
            value={draft.end}
            onValue={set('end')}
            error={action.error}
          />
        </div>
        <div class="actions">
          <button type="submit" class="primary" id="audit-apply" disabled={action.busy}>
            Apply filters
          </button>
          <button
            type="button"
            id="audit-clear"
            onClick={() => {
              const empty = { action: '', keyId: '', start: '', end: '' };
              setDraft(empty);
              void load(empty, '');
            }}
          >
            Clear
          </button>
        </div>
      </form>
      <FormError id="audit-error" error={action.error} fields={FIELDS.filter((f) => f !== 'page_token')} />
      {events && (
        <>
          <table
            data-testid="audit-table"
            data-filter-action={applied.action}
            data-filter-key={applied.keyId}
            data-filter-start={applied.start}
            data-filter-end={applied.end}
          >
            <thead>
              <tr>
                <th scope="col">Time</th>
                <th scope="col">Action</th>
                <th scope="col">Outcome</th>
                <th scope="col">Actor</th>
                <th scope="col">Key</th>
                <th scope="col">Reason</th>
                <th scope="col">Peer / client</th>
              </tr>
            </thead>
            <tbody>
              {events.length === 0 && (
                <tr>
                  <td colSpan={7}>
                    No events{applied.action || applied.keyId || applied.start || applied.end ? ' match these filters' : ''}.
                  </td>
                </tr>
              )}
              {events.map((e) => (
                <tr key={String(e.id)} data-testid="audit-row" data-action={e.action} data-key={e.keyId ?? ''}>
                  <td class="nowrap">{formatTime(e.time)}</td>
                  <td class="nowrap">
                    <code>{e.action}</code>
                    {(e.occurrences ?? 1) > 1 ? ` ×${e.occurrences}` : ''}
                  </td>
                  <td>
                    <span class={`badge badge-${e.outcome ?? ''}`}>{e.outcome}</span>
                  </td>
                  <td class="nowrap">{e.actor}</td>
                  <td class="nowrap">{e.keyId ? <code>{e.keyId}</code> : '—'}</td>
                  <td class="wrap">{e.reason || '—'}</td>
                  <td class="nowrap">{e.clientAddress || e.peer || '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {next && (
            <button type="button" id="audit-more" disabled={action.busy} onClick={() => void load(applied, next)}>
              Load more
            </button>
          )}
        </>
      )}
    </section>
  );
}
