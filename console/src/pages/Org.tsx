/** One organization: its settings, editing (limits need the administrator), deactivation and deletion. */
import { useState } from 'preact/hooks';
import { requestId, rpc } from '../api';
import { Checkbox, Field, FormError, LoadError, Notice, putWholeNumbers, useAction } from '../components/forms';
import { OrgTabs } from '../components/Layout';
import { useLoad } from '../components/useLoad';
import { formatNumber, formatTime } from '../format';
import type { DeleteOrganizationResponse, Organization, Session } from '../types';

export function OrgPage(props: { orgId: string; session: Session }) {
  const org = useLoad(() => rpc<Organization>('GetOrganization', { id: props.orgId }), [props.orgId]);
  const [saved, setSaved] = useState<string | null>(null);
  const root = props.session.kind === 'root';
  const o = org.data;
  const done = (msg: string) => {
    setSaved(msg);
    org.reload();
  };
  return (
    <section>
      <h1 data-testid="org-title">{o ? o.name : 'Organization'}</h1>
      <OrgTabs orgId={props.orgId} current="org" />
      <LoadError error={org.error} />
      {saved && <Notice testid="org-saved">{saved}</Notice>}
      {o && (
        <>
          <dl class="details" data-testid="org-details">
            <dt>Id</dt>
            <dd>
              <code>{o.id}</code>
            </dd>
            <dt>State</dt>
            <dd data-testid="org-state">{o.deletedAt ? `deleted ${formatTime(o.deletedAt)}` : o.active ? 'active' : 'inactive'}</dd>
            <dt>Rate limit per minute</dt>
            <dd>{o.rateLimitPerMinute ? formatNumber(o.rateLimitPerMinute) : 'unlimited'}</dd>
            <dt>Monthly quota</dt>
            <dd>{o.monthlyQuota ? formatNumber(o.monthlyQuota) : 'unlimited'}</dd>
            <dt>Billing anchor day</dt>
            <dd>{o.billingAnchorDay ?? 1}</dd>
            <dt>Maximum usable keys</dt>
            <dd>{formatNumber(o.maxKeys)}</dd>
            <dt>Quota alerts</dt>
            <dd>{(o.quotaAlertPercents ?? []).map((p) => `${p}%`).join(', ') || '—'}</dd>
            <dt>Created</dt>
            <dd>{formatTime(o.createdAt)}</dd>
            <dt>Updated</dt>
            <dd>{formatTime(o.updatedAt)}</dd>
          </dl>
          {!o.deletedAt && <EditOrganization key={o.updatedAt} org={o} root={root} onSaved={() => done('Changes saved.')} />}
          {root && !o.deletedAt && (
            <ActiveToggle org={o} onSaved={(a) => done(a ? 'Organization activated.' : 'Organization deactivated.')} />
          )}
          {root && !o.deletedAt && <DeleteOrganization org={o} onDeleted={(n) => done(`Organization deleted; ${n} key(s) revoked.`)} />}
        </>
      )}
    </section>
  );
}

const EDIT_FIELDS = ['name', 'max_keys', 'rate_limit_per_minute', 'monthly_quota', 'billing_anchor_day'];

function EditOrganization(props: { org: Organization; root: boolean; onSaved: () => void }) {
  const o = props.org;
  const [name, setName] = useState(o.name ?? '');
  const [rate, setRate] = useState(String(o.rateLimitPerMinute ?? 0));
  const [quota, setQuota] = useState(String(o.monthlyQuota ?? 0));
  const [anchor, setAnchor] = useState(String(o.billingAnchorDay ?? 1));
  const [maxKeys, setMaxKeys] = useState(String(o.maxKeys ?? 0));
  const action = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    const r = await action.run(() => {
      const body: Record<string, unknown> = { id: o.id };
      if (name !== o.name) body.name = name;
      if (props.root) {
        putWholeNumbers(body, [
          ['rateLimitPerMinute', 'rate_limit_per_minute', rate],
          ['monthlyQuota', 'monthly_quota', quota],
          ['billingAnchorDay', 'billing_anchor_day', anchor],
          ['maxKeys', 'max_keys', maxKeys],
        ]);
      }
      return rpc<Organization>('UpdateOrganization', body);
    });
    if (r) props.onSaved();
  };
  return (
    <form class="card" onSubmit={(e) => void submit(e)} data-testid="org-edit-form" noValidate aria-labelledby="org-edit-title">
      <h2 id="org-edit-title">Edit</h2>
      <div class="grid">
        <Field id="org-edit-name" name="name" label="Name" value={name} onValue={setName} error={action.error} />
        {props.root && (
          <>
            <Field
              id="org-edit-rate"
              name="rate_limit_per_minute"
              label="Rate limit per minute"
              inputMode="numeric"
              hint="0 is unlimited."
              value={rate}
              onValue={setRate}
              error={action.error}
            />
            <Field
              id="org-edit-quota"
              name="monthly_quota"
              label="Monthly quota (requests)"
              inputMode="numeric"
              hint="0 is unlimited."
              value={quota}
              onValue={setQuota}
              error={action.error}
            />
            <Field
              id="org-edit-anchor"
              name="billing_anchor_day"
              label="Billing anchor day"
              inputMode="numeric"
              hint="1..28"
              value={anchor}
              onValue={setAnchor}
              error={action.error}
            />
            <Field
              id="org-edit-max-keys"
              name="max_keys"
              label="Maximum usable keys"
              inputMode="numeric"
              value={maxKeys}
              onValue={setMaxKeys}
              error={action.error}
            />
          </>
        )}
      </div>
      {!props.root && <p class="hint">Limits, quota and the anchor day can be changed by the administrator only.</p>}
      <FormError id="org-edit-error" error={action.error} fields={EDIT_FIELDS} />
      <button type="submit" class="primary" id="org-edit-submit" disabled={action.busy}>
        Save changes
      </button>
    </form>
  );
}

function ActiveToggle(props: { org: Organization; onSaved: (active: boolean) => void }) {
  const action = useAction();
  const next = !props.org.active;
  const toggle = async () => {
    const r = await action.run(() => rpc<Organization>('UpdateOrganization', { id: props.org.id, active: next }));
    if (r) props.onSaved(next);
  };
  return (
    <div class="card">
      <h2>{next ? 'Activate' : 'Deactivate'}</h2>
      <p>{next ? 'Its keys are accepted again.' : 'Its keys are refused and no keys can be created until it is activated again.'}</p>
      <FormError id="org-active-error" error={action.error} fields={[]} />
      <button type="button" id="org-toggle-active" class={next ? '' : 'danger'} disabled={action.busy} onClick={() => void toggle()}>
        {next ? 'Activate organization' : 'Deactivate organization'}
      </button>
    </div>
  );
}

function DeleteOrganization(props: { org: Organization; onDeleted: (revoked: number) => void }) {
  const [reason, setReason] = useState('');
  const [confirmed, setConfirmed] = useState(false);
  const action = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    const r = await action.run(() => {
      if (!confirmed) throw new Error('Tick the confirmation first.');
      return rpc<DeleteOrganizationResponse>('DeleteOrganization', { organizationId: props.org.id, reason, requestId: requestId() });
    });
    if (r) props.onDeleted(r.revokedKeys ?? 0);
  };
  return (
    <form
      class="card card-danger"
      onSubmit={(e) => void submit(e)}
      data-testid="org-delete-form"
      noValidate
      aria-labelledby="org-delete-title"
    >
      <h2 id="org-delete-title">Delete organization</h2>
      <p>Revokes every key of the organization at once. Usage and audit history are kept. This cannot be undone.</p>
      <Field id="org-delete-reason" name="reason" label="Reason" required value={reason} onValue={setReason} error={action.error} />
      <Checkbox
        id="org-delete-confirm"
        label={`I want to delete ${props.org.name ?? props.org.id}`}
        checked={confirmed}
        onChange={setConfirmed}
      />
      <FormError id="org-delete-error" error={action.error} fields={['reason']} />
      <button type="submit" class="danger" id="org-delete-submit" disabled={action.busy}>
        Delete organization
      </button>
    </form>
  );
}
