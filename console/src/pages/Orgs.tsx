/** Organizations (administrator only): the list, deleted ones on request, and creation. */
import { useState } from 'preact/hooks';
import { requestId, rpc } from '../api';
import { Checkbox, Field, FormError, LoadError, putWholeNumbers, useAction } from '../components/forms';
import { useLoad } from '../components/useLoad';
import { formatNumber, formatTime } from '../format';
import { href, navigate } from '../router';
import type { ListOrganizationsResponse, Organization } from '../types';

async function listAll(includeDeleted: boolean): Promise<Organization[]> {
  const all: Organization[] = [];
  let pageToken = '';
  do {
    const r = await rpc<ListOrganizationsResponse>('ListOrganizations', { pageSize: 1000, pageToken, includeDeleted });
    all.push(...(r.organizations ?? []));
    pageToken = r.nextPageToken ?? '';
  } while (pageToken !== '' && all.length < 10000);
  return all;
}

function orgState(o: Organization): string {
  if (o.deletedAt) return 'deleted';
  return o.active ? 'active' : 'inactive';
}

export function OrgsPage() {
  const [includeDeleted, setIncludeDeleted] = useState(false);
  const list = useLoad(() => listAll(includeDeleted), [includeDeleted]);
  return (
    <section>
      <h1>Organizations</h1>
      <CreateOrganization onCreated={(o) => navigate(href('orgs', o.id))} />
      <h2>All organizations</h2>
      <Checkbox id="orgs-include-deleted" label="Show deleted organizations" checked={includeDeleted} onChange={setIncludeDeleted} />
      <LoadError error={list.error} />
      {list.data && (
        <table data-testid="orgs-table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Id</th>
              <th scope="col">State</th>
              <th scope="col">Rate limit / min</th>
              <th scope="col">Monthly quota</th>
              <th scope="col">Anchor day</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {list.data.length === 0 && (
              <tr>
                <td colSpan={7}>No organizations yet.</td>
              </tr>
            )}
            {list.data.map((o) => (
              <tr key={o.id} data-testid={`org-row-${o.id}`}>
                <td>
                  <a href={href('orgs', o.id)}>{o.name}</a>
                </td>
                <td>
                  <code>{o.id}</code>
                </td>
                <td>
                  <span class={`badge badge-${orgState(o)}`}>{orgState(o)}</span>
                </td>
                <td>{o.rateLimitPerMinute ? formatNumber(o.rateLimitPerMinute) : 'unlimited'}</td>
                <td>{o.monthlyQuota ? formatNumber(o.monthlyQuota) : 'unlimited'}</td>
                <td>{o.billingAnchorDay ?? 1}</td>
                <td>{formatTime(o.createdAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

const CREATE_FIELDS = ['name', 'max_keys', 'rate_limit_per_minute', 'monthly_quota', 'billing_anchor_day', 'quota_alert_percents'];

function CreateOrganization(props: { onCreated: (o: Organization) => void }) {
  const [name, setName] = useState('');
  const [maxKeys, setMaxKeys] = useState('');
  const [rate, setRate] = useState('');
  const [quota, setQuota] = useState('');
  const [anchor, setAnchor] = useState('');
  const [alerts, setAlerts] = useState('');
  const action = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    const o = await action.run(() => {
      const body: Record<string, unknown> = { name, requestId: requestId() };
      putWholeNumbers(body, [
        ['maxKeys', 'max_keys', maxKeys],
        ['rateLimitPerMinute', 'rate_limit_per_minute', rate],
        ['monthlyQuota', 'monthly_quota', quota],
        ['billingAnchorDay', 'billing_anchor_day', anchor],
      ]);
      if (alerts.trim())
        body.quotaAlertPercents = alerts
          .split(/[\s,]+/)
          .filter(Boolean)
          .map(Number);
      return rpc<Organization>('CreateOrganization', body);
    });
    if (o) props.onCreated(o);
  };
  return (
    <form class="card" onSubmit={(e) => void submit(e)} data-testid="org-create-form" noValidate aria-labelledby="org-create-title">
      <h2 id="org-create-title">New organization</h2>
      <div class="grid">
        <Field id="org-name" name="name" label="Name" required value={name} onValue={setName} error={action.error} />
        <Field
          id="org-rate"
          name="rate_limit_per_minute"
          label="Rate limit per minute"
          inputMode="numeric"
          hint="Default 60; 0 is unlimited."
          value={rate}
          onValue={setRate}
          error={action.error}
        />
        <Field
          id="org-quota"
          name="monthly_quota"
          label="Monthly quota (requests)"
          inputMode="numeric"
          hint="Default 0: unlimited."
          value={quota}
          onValue={setQuota}
          error={action.error}
        />
        <Field
          id="org-anchor"
          name="billing_anchor_day"
          label="Billing anchor day"
          inputMode="numeric"
          hint="1..28, default 1."
          value={anchor}
          onValue={setAnchor}
          error={action.error}
        />
        <Field
          id="org-max-keys"
          name="max_keys"
          label="Maximum usable keys"
          inputMode="numeric"
          hint="Default 100."
          value={maxKeys}
          onValue={setMaxKeys}
          error={action.error}
        />
        <Field
          id="org-alerts"
          name="quota_alert_percents"
          label="Quota alert percentages"
          hint="Comma-separated, default 80, 100."
          value={alerts}
          onValue={setAlerts}
          error={action.error}
        />
      </div>
      <FormError id="org-create-error" error={action.error} fields={CREATE_FIELDS} />
      <button type="submit" class="primary" id="org-create-submit" disabled={action.busy}>
        Create organization
      </button>
    </form>
  );
}
