/** The organization's quota in its current billing period: used of limit, percent, period end. */
import { formatNumber, formatTime } from '../format';
import type { Quota } from '../types';

export function QuotaGauge(props: { quota: Quota }) {
  const q = props.quota;
  const limit = q.limit ?? 0;
  const used = q.used ?? 0;
  const pct = q.percentUsed ?? 0;
  return (
    <div class="card quota" data-testid="quota-gauge">
      <h2>Quota this billing period</h2>
      {limit === 0 ? (
        <p data-testid="quota-text">
          <strong>Unlimited</strong> — {formatNumber(used)} requests used.
        </p>
      ) : (
        <>
          <meter
            id="quota-meter"
            min={0}
            max={limit}
            low={limit * 0.8}
            high={limit * 0.95}
            optimum={0}
            value={Math.min(used, limit)}
            aria-label="Quota used"
          />
          <p data-testid="quota-text">
            <strong>{formatNumber(used)}</strong> of {formatNumber(limit)} requests used ({pct.toFixed(1)}%), {formatNumber(q.remaining)}{' '}
            remaining.
          </p>
        </>
      )}
      <p class="hint">
        Period {formatTime(q.periodStart)} – {formatTime(q.periodEnd)} (ends {formatTime(q.periodEnd)}).
      </p>
    </div>
  );
}
