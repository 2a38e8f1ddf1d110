/** An organization's keys: the list with status and last use, and creation (secret shown once). */
import { useState } from 'preact/hooks';
import { requestId, rpc } from '../api';
import { Checkbox, Field, FormError, LoadError, putWholeNumbers, useAction } from '../components/forms';
import { OrgTabs } from '../components/Layout';
import { SecretPanel } from '../components/SecretPanel';
import { useLoad } from '../components/useLoad';
import { formatTime, statusName } from '../format';
import { href } from '../router';
import type { ApiKey, CreateKeyResponse, ListKeysResponse } from '../types';

async function listAll(orgId: string, includeRevoked: boolean): Promise<ApiKey[]> {
  const all: ApiKey[] = [];
  let pageToken = '';
  do {
    const r = await rpc<ListKeysResponse>('ListKeys', { organizationId: orgId, includeRevoked, pageSize: 1000, pageToken });
    all.push(...(r.keys ?? []));
    pageToken = r.nextPageToken ?? '';
  } while (pageToken !== '' && all.length < 10000);
  return all;
}

export function StatusBadge(props: { k: ApiKey }) {
  const s = statusName(props.k.status);
  return (
    <span class={`badge badge-${s}`} data-testid={`key-status-${props.k.id}`}>
      {s}
    </span>
  );
}

export function KeysPage(props: { orgId: string }) {
  const [includeRevoked, setIncludeRevoked] = useState(false);
  const keys = useLoad(() => listAll(props.orgId, includeRevoked), [props.orgId, includeRevoked]);
  // The new secret lives here only, until the panel is closed.
  const [secret, setSecret] = useState<{ secret: string; name: string } | null>(null);
  return (
    <section>
      <h1>Keys</h1>
      <OrgTabs orgId={props.orgId} current="keys" />
      <CreateKey
        orgId={props.orgId}
        onCreated={(r) => {
          setSecret({ secret: r.secret ?? '', name: r.key?.name ?? '' });
          keys.reload();
        }}
      />
      {secret && <SecretPanel title={`Key “${secret.name}” created`} secret={secret.secret} onClose={() => setSecret(null)} />}
      <h2>Keys of this organization</h2>
      <Checkbox id="keys-include-revoked" label="Show revoked keys" checked={includeRevoked} onChange={setIncludeRevoked} />
      <LoadError error={keys.error} />
      {keys.data && (
        <table data-testid="keys-table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Key</th>
              <th scope="col">Status</th>
              <th scope="col">Scopes</th>
              <th scope="col">Rate limit / min</th>
              <th scope="col">Last used</th>
              <th scope="col">Expires</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {keys.data.length === 0 && (
              <tr>
                <td colSpan={8}>No keys.</td>
              </tr>
            )}
            {keys.data.map((k) => (
              <tr key={k.id} data-testid={`key-row-${k.id}`}>
                <td>
                  <a href={href('keys', k.id)}>{k.name}</a>
                </td>
                <td>
                  <code title={k.id}>
                    {k.prefix}…{k.hint}
                  </code>
                </td>
                <td>
                  <StatusBadge k={k} />
                </td>
                <td>{(k.scopes ?? []).join(', ') || '—'}</td>
                <td>
                  {k.rateLimitPerMinute === undefined ? 'org default' : k.rateLimitPerMinute === 0 ? 'unlimited' : k.rateLimitPerMinute}
                </td>
                <td data-testid={`key-last-used-${k.id}`}>{formatTime(k.lastUsedAt, 'never')}</td>
                <td>{formatTime(k.expiresAt, 'never')}</td>
                <td>{formatTime(k.createdAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

const CREATE_FIELDS = ['name', 'environment', 'scopes', 'expires_in_days', 'expires_at', 'rate_limit_per_minute'];

function CreateKey(props: { orgId: string; onCreated: (r: CreateKeyResponse) => void }) {
  const [name, setName] = useState('');
  const [environment, setEnvironment] = useState('ENVIRONMENT_LIVE');
  const [scopes, setScopes] = useState('');
  const [days, setDays] = useState('');
  const [rate, setRate] = useState('');
  const action = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    const r = await action.run(() => {
      const body: Record<string, unknown> = {
        organizationId: props.orgId,
        name,
        environment,
        scopes: scopes.split(/[\s,]+/).filter(Boolean),
        requestId: requestId(),
      };
      putWholeNumbers(body, [
        ['expiresInDays', 'expires_in_days', days],
        ['rateLimitPerMinute', 'rate_limit_per_minute', rate],
      ]);
      return rpc<CreateKeyResponse>('CreateKey', body);
    });
    if (r) {
      setName('');
      setScopes('');
      setDays('');
      setRate('');
      props.onCreated(r);
    }
  };
  return (
    <form class="card" onSubmit={(e) => void submit(e)} data-testid="key-create-form" noValidate aria-labelledby="key-create-title">
      <h2 id="key-create-title">New key</h2>
      <div class="grid">
        <Field id="key-name" name="name" label="Name" required value={name} onValue={setName} error={action.error} />
        <div class="field">
          <label for="key-environment">Environment</label>
          <select id="key-environment" name="environment" value={environment} onChange={(e) => setEnvironment(e.currentTarget.value)}>
            <option value="ENVIRONMENT_LIVE">live (kw_live_…)</option>
            <option value="ENVIRONMENT_TEST">test (kw_test_…)</option>
          </select>
        </div>
        <Field
          id="key-scopes"
          name="scopes"
          label="Scopes"
          hint="Comma-separated, e.g. chat, agents:read. The scope admin lets the key manage its organization."
          value={scopes}
          onValue={setScopes}
          error={action.error}
        />
        <Field
          id="key-expires-days"
          name="expires_in_days"
          label="Expires in (days)"
          inputMode="numeric"
          hint="1..3650; empty: never."
          value={days}
          onValue={setDays}
          error={action.error}
        />
        <Field
          id="key-rate"
          name="rate_limit_per_minute"
          label="Rate limit per minute"
          inputMode="numeric"
          hint="Empty: the organization's default; 0 is unlimited."
          value={rate}
          onValue={setRate}
          error={action.error}
        />
      </div>
      <FormError id="key-create-error" error={action.error} fields={CREATE_FIELDS} />
      <button type="submit" class="primary" id="key-create-submit" disabled={action.busy}>
        Create key
      </button>
    </form>
  );
}
