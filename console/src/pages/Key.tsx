/** One key: details, rate-limit status and reset, rotate (new secret shown once), revoke, disable and enable. */
import { useState } from 'preact/hooks';
import { requestId, rpc } from '../api';
import { Field, FormError, LoadError, Notice, putWholeNumbers, useAction } from '../components/forms';
import { SecretPanel } from '../components/SecretPanel';
import { useLoad } from '../components/useLoad';
import { formatTime } from '../format';
import { href } from '../router';
import type { ApiKey, RateLimitStatus, RotateKeyResponse } from '../types';
import { StatusBadge } from './Keys';

export function KeyPage(props: { keyId: string }) {
  const key = useLoad(() => rpc<ApiKey>('GetKey', { id: props.keyId }), [props.keyId]);
  const [notice, setNotice] = useState<string | null>(null);
  const [secret, setSecret] = useState<{ secret: string; newKey: ApiKey } | null>(null);
  const k = key.data;
  const done = (msg: string) => {
    setNotice(msg);
    key.reload();
  };
  const usable = k !== undefined && k.status !== 'KEY_STATUS_REVOKED';
  return (
    <section>
      <h1 data-testid="key-title">{k ? `Key ${k.name ?? ''}` : 'Key'}</h1>
      {k?.organizationId && (
        <p>
          <a href={href('orgs', k.organizationId, 'keys')} data-testid="key-back">
            ← Keys of the organization
          </a>
        </p>
      )}
      <LoadError error={key.error} />
      {notice && <Notice testid="key-notice">{notice}</Notice>}
      {secret && (
        <SecretPanel
          title="Key rotated: the new secret"
          secret={secret.secret}
          onClose={() => {
            const id = secret.newKey.id;
            setSecret(null);
            location.hash = href('keys', id);
          }}
        />
      )}
      {k && (
        <>
          <dl class="details" data-testid="key-details">
            <dt>Id</dt>
            <dd>
              <code>{k.id}</code>
            </dd>
            <dt>Status</dt>
            <dd>
              <StatusBadge k={k} />
            </dd>
            <dt>Key</dt>
            <dd>
              <code>
                {k.prefix}…{k.hint}
              </code>
            </dd>
            <dt>Environment</dt>
            <dd>{k.environment === 'ENVIRONMENT_TEST' ? 'test' : 'live'}</dd>
            <dt>Scopes</dt>
            <dd>{(k.scopes ?? []).join(', ') || '—'}</dd>
            <dt>Rate limit per minute</dt>
            <dd>
              {k.rateLimitPerMinute === undefined
                ? "organization's default"
                : k.rateLimitPerMinute === 0
                  ? 'unlimited'
                  : k.rateLimitPerMinute}
            </dd>
            <dt>Last used</dt>
            <dd>{formatTime(k.lastUsedAt, 'never')}</dd>
            <dt>Expires</dt>
            <dd>{formatTime(k.expiresAt, 'never')}</dd>
            <dt>Created</dt>
            <dd>{formatTime(k.createdAt)}</dd>
            {k.disabledAt && (
              <>
                <dt>Disabled</dt>
                <dd>{formatTime(k.disabledAt)}</dd>
              </>
            )}
            {k.revokedAt && (
              <>
                <dt>Revoked</dt>
                <dd data-testid="key-revoked">
                  {formatTime(k.revokedAt)} by {k.revokedBy}: {k.revokeReason}
                </dd>
              </>
            )}
            {k.replacedByKeyId && (
              <>
                <dt>Replaced by</dt>
                <dd>
                  <a href={href('keys', k.replacedByKeyId)}>{k.replacedByKeyId}</a>
                </dd>
              </>
            )}
            {k.rotatedFromKeyId && (
              <>
                <dt>Rotated from</dt>
                <dd>
                  <a href={href('keys', k.rotatedFromKeyId)}>{k.rotatedFromKeyId}</a>
                </dd>
              </>
            )}
          </dl>
          <RateLimit keyId={k.id} />
          {usable && <EnableToggle k={k} onSaved={(en) => done(en ? 'Key enabled.' : 'Key disabled.')} />}
          {usable && !k.replacedByKeyId && (
            <RotateKey k={k} onRotated={(r) => setSecret({ secret: r.secret ?? '', newKey: r.newKey ?? { id: '' } })} />
          )}
          {usable && <RevokeKey k={k} onRevoked={() => done('Key revoked.')} />}
        </>
      )}
    </section>
  );
}

function RateLimit(props: { keyId: string }) {
  const status = useLoad(() => rpc<RateLimitStatus>('GetRateLimitStatus', { keyId: props.keyId }), [props.keyId]);
  const action = useAction();
  const [reset, setReset] = useState(false);
  const s = status.data;
  const doReset = async () => {
    const r = await action.run(() => rpc<RateLimitStatus>('ResetRateLimit', { keyId: props.keyId }));
    if (r) {
      setReset(true);
      status.reload();
    }
  };
  return (
    <div class="card" data-testid="rate-limit">
      <h2>Rate limit</h2>
      <LoadError error={status.error} />
      {s && (
        <dl class="details">
          <dt>Limit</dt>
          <dd data-testid="rate-limit-limit">
            {s.limit ? `${s.limit} per minute (${s.limitSource === 'key' ? 'key' : 'organization'})` : 'unlimited'}
          </dd>
          <dt>Remaining now</dt>
          <dd data-testid="rate-limit-remaining">{s.limit ? (s.remaining ?? 0) : '—'}</dd>
          <dt>Next request freed in</dt>
          <dd>{s.limit && !s.remaining ? `${s.resetSeconds ?? 0} s` : '—'}</dd>
        </dl>
      )}
      {reset && <Notice testid="rate-limit-reset-done">The rate-limit window was cleared.</Notice>}
      <FormError id="rate-limit-error" error={action.error} fields={[]} />
      <div class="actions">
        <button type="button" id="rate-limit-refresh" onClick={() => status.reload()}>
          Refresh
        </button>
        <button type="button" id="rate-limit-reset" disabled={action.busy} onClick={() => void doReset()}>
          Reset rate limit
        </button>
      </div>
    </div>
  );
}

function EnableToggle(props: { k: ApiKey; onSaved: (enabled: boolean) => void }) {
  const action = useAction();
  const enabled = props.k.enabled !== false && !props.k.disabledAt;
  const toggle = async () => {
    const r = await action.run(() => rpc<ApiKey>('UpdateKey', { id: props.k.id, enabled: !enabled }));
    if (r) props.onSaved(!enabled);
  };
  return (
    <div class="card">
      <h2>{enabled ? 'Disable' : 'Enable'}</h2>
      <p>{enabled ? 'A disabled key is refused until it is enabled again.' : 'The key is disabled: it is refused.'}</p>
      <FormError id="key-enable-error" error={action.error} fields={[]} />
      <button type="button" id="key-toggle-enabled" disabled={action.busy} onClick={() => void toggle()}>
        {enabled ? 'Disable key' : 'Enable key'}
      </button>
    </div>
  );
}

function RotateKey(props: { k: ApiKey; onRotated: (r: RotateKeyResponse) => void }) {
  const [grace, setGrace] = useState('');
  const action = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    const r = await action.run(() => {
      const body: Record<string, unknown> = { id: props.k.id, requestId: requestId() };
      putWholeNumbers(body, [['gracePeriodSeconds', 'grace_period_seconds', grace]]);
      return rpc<RotateKeyResponse>('RotateKey', body);
    });
    if (r) props.onRotated(r);
  };
  return (
    <form class="card" onSubmit={(e) => void submit(e)} data-testid="key-rotate-form" noValidate aria-labelledby="key-rotate-title">
      <h2 id="key-rotate-title">Rotate</h2>
      <p>Issues a new key with the same settings. The old one keeps working for the grace period, then expires.</p>
      <Field
        id="key-rotate-grace"
        name="grace_period_seconds"
        label="Grace period (seconds)"
        inputMode="numeric"
        hint="0..2592000; empty: the server's default (usually a day); 0 ends the old key at once."
        value={grace}
        onValue={setGrace}
        error={action.error}
      />
      <FormError id="key-rotate-error" error={action.error} fields={['grace_period_seconds']} />
      <button type="submit" id="key-rotate-submit" disabled={action.busy}>
        Rotate key
      </button>
    </form>
  );
}

function RevokeKey(props: { k: ApiKey; onRevoked: () => void }) {
  const [reason, setReason] = useState('');
  const action = useAction();
  const submit = async (e: Event) => {
    e.preventDefault();
    const r = await action.run(() => rpc<ApiKey>('RevokeKey', { id: props.k.id, reason, requestId: requestId() }));
    if (r) props.onRevoked();
  };
  return (
    <form
      class="card card-danger"
      onSubmit={(e) => void submit(e)}
      data-testid="key-revoke-form"
      noValidate
      aria-labelledby="key-revoke-title"
    >
      <h2 id="key-revoke-title">Revoke</h2>
      <p>The key is refused at once, on every replica. This cannot be undone.</p>
      <Field id="key-revoke-reason" name="reason" label="Reason" required value={reason} onValue={setReason} error={action.error} />
      <FormError id="key-revoke-error" error={action.error} fields={['reason']} />
      <button type="submit" class="danger" id="key-revoke-submit" disabled={action.busy}>
        Revoke key
      </button>
    </form>
  );
}
