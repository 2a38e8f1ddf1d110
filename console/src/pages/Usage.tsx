/** Usage of an organization: per-day chart, tables by endpoint and by key, and the quota gauge. */
import { useState } from 'preact/hooks';
import { rpc } from '../api';
import { OrgTabs } from '../components/Layout';
import { LoadError } from '../components/forms';
import { QuotaGauge } from '../components/QuotaGauge';
import { UsageChart } from '../components/UsageChart';
import { useLoad } from '../components/useLoad';
import { errorsOf, formatCost, formatMs, formatNumber, formatTime } from '../format';
import { href } from '../router';
import type { Quota, UsageStats, UsageTotals } from '../types';

function TotalsCells(props: { t: UsageTotals | undefined; testid: string }) {
  return (
    <>
      <td class="num" data-testid={`${props.testid}-requests`}>
        {formatNumber(props.t?.requests)}
      </td>
      <td class="num" data-testid={`${props.testid}-errors`}>
        {formatNumber(errorsOf(props.t))}
      </td>
      <td class="num">{formatMs(props.t?.p95DurationMs)}</td>
      <td class="num">{formatCost(props.t?.costUsd)}</td>
    </>
  );
}

export function UsagePage(props: { orgId: string }) {
  // Empty: the server's current month (its clock decides), shown once the stats answer.
  const [month, setMonth] = useState('');
  const [billing, setBilling] = useState(false);
  const stats = useLoad(
    () => rpc<UsageStats>('GetUsageStats', { organizationId: props.orgId, month, billingPeriod: billing }),
    [props.orgId, month, billing],
  );
  const quota = useLoad(() => rpc<Quota>('GetQuota', { organizationId: props.orgId }), [props.orgId]);
  const s = stats.data;
  return (
    <section>
      <h1>Usage</h1>
      <OrgTabs orgId={props.orgId} current="usage" />
      {quota.data && <QuotaGauge quota={quota.data} />}
      <LoadError error={quota.error} />
      <form class="toolbar" onSubmit={(e) => e.preventDefault()} aria-label="Period">
        <div class="field">
          <label for="usage-month">Month</label>
          <input
            id="usage-month"
            type="month"
            value={month || stats.data?.month || ''}
            required
            onChange={(e) => e.currentTarget.value && setMonth(e.currentTarget.value)}
          />
        </div>
        <fieldset class="radio-group">
          <legend>Period</legend>
          <label>
            <input type="radio" name="usage-period" id="usage-period-month" checked={!billing} onChange={() => setBilling(false)} />{' '}
            Calendar month
          </label>
          <label>
            <input type="radio" name="usage-period" id="usage-period-billing" checked={billing} onChange={() => setBilling(true)} /> Billing
            period
          </label>
        </fieldset>
      </form>
      <LoadError error={stats.error} />
      {s && (
        <>
          <p data-testid="usage-period">
            {formatTime(s.periodStart)} – {formatTime(s.periodEnd)} {s.billingPeriod ? '(billing period)' : '(calendar month)'}
          </p>
          <div class="stats" data-testid="usage-totals">
            <div>
              <span class="stat-label">Requests</span>
              <span class="stat" data-testid="usage-total-requests">
                {formatNumber(s.totals?.requests)}
              </span>
            </div>
            <div>
              <span class="stat-label">Errors</span>
              <span class="stat" data-testid="usage-total-errors">
                {formatNumber(errorsOf(s.totals))}
              </span>
            </div>
            <div>
              <span class="stat-label">Tokens</span>
              <span class="stat">{formatNumber(s.totals?.tokens)}</span>
            </div>
            <div>
              <span class="stat-label">Cost</span>
              <span class="stat">{formatCost(s.totals?.costUsd)}</span>
            </div>
          </div>
          <UsageChart stats={s} />
          <h2>By endpoint</h2>
          <table data-testid="usage-by-endpoint">
            <thead>
              <tr>
                <th scope="col">Endpoint</th>
                <th scope="col">Method</th>
                <th scope="col">Requests</th>
                <th scope="col">Errors</th>
                <th scope="col">p95 duration</th>
                <th scope="col">Cost</th>
              </tr>
            </thead>
            <tbody>
              {(s.byEndpoint ?? []).length === 0 && (
                <tr>
                  <td colSpan={6}>No usage in this period.</td>
                </tr>
              )}
              {(s.byEndpoint ?? []).map((e) => (
                <tr key={`${e.method ?? ''} ${e.endpoint ?? ''}`} data-testid={`usage-endpoint-row`} data-endpoint={e.endpoint}>
                  <td>
                    <code>{e.endpoint}</code>
                  </td>
                  <td>{e.method}</td>
                  <TotalsCells t={e.totals} testid={`usage-endpoint-${e.method ?? ''}-${e.endpoint ?? ''}`} />
                </tr>
              ))}
            </tbody>
          </table>
          <h2>By key</h2>
          <table data-testid="usage-by-key">
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col">Requests</th>
                <th scope="col">Errors</th>
                <th scope="col">p95 duration</th>
                <th scope="col">Cost</th>
              </tr>
            </thead>
            <tbody>
              {(s.byKey ?? []).length === 0 && (
                <tr>
                  <td colSpan={5}>No usage in this period.</td>
                </tr>
              )}
              {(s.byKey ?? []).map((k) => (
                <tr key={k.keyId} data-testid={`usage-key-row-${k.keyId ?? ''}`}>
                  <td>
                    <a href={href('keys', k.keyId ?? '')}>
                      <code>{k.keyId}</code>
                    </a>
                  </td>
                  <TotalsCells t={k.totals} testid={`usage-key-${k.keyId ?? ''}`} />
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
