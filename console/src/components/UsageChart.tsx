/** Requests and errors per day (uPlot), over the reported period; days without usage are 0. */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { errorsOf } from '../format';
import type { UsageStats } from '../types';

const DAY = 86400;

/** One point per UTC day of [periodStart, periodEnd). */
export function dailySeries(stats: UsageStats): [number[], number[], number[]] {
  const byDay = new Map((stats.byDay ?? []).map((d) => [d.day ?? '', d.totals]));
  const start = stats.periodStart ? Date.parse(stats.periodStart) / 1000 : NaN;
  const end = stats.periodEnd ? Date.parse(stats.periodEnd) / 1000 : NaN;
  const xs: number[] = [];
  const requests: number[] = [];
  const errors: number[] = [];
  if (Number.isFinite(start) && Number.isFinite(end) && end > start && end - start <= 40 * DAY) {
    for (let t = Math.floor(start / DAY) * DAY; t < end; t += DAY) {
      const totals = byDay.get(new Date(t * 1000).toISOString().slice(0, 10));
      xs.push(t);
      requests.push(totals?.requests ?? 0);
      errors.push(errorsOf(totals));
    }
  } else {
    for (const d of stats.byDay ?? []) {
      xs.push(Date.parse(`${d.day ?? ''}T00:00:00Z`) / 1000);
      requests.push(d.totals?.requests ?? 0);
      errors.push(errorsOf(d.totals));
    }
  }
  return [xs, requests, errors];
}

export function UsageChart(props: { stats: UsageStats }) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const data = dailySeries(props.stats);
    const width = Math.max(320, el.clientWidth || 800);
    const plot = new uPlot(
      {
        width,
        height: 260,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max)] } },
        axes: [{}, { label: 'per day' }],
        series: [
          { label: 'Day (UTC)', value: (_u, v) => (v == null ? '' : new Date(v * 1000).toISOString().slice(0, 10)) },
          { label: 'Requests', stroke: '#2563eb', fill: 'rgba(37, 99, 235, 0.12)', width: 2 },
          { label: 'Errors (4xx + 5xx)', stroke: '#dc2626', width: 2 },
        ],
      },
      data,
      el,
    );
    const onResize = () => plot.setSize({ width: Math.max(320, el.clientWidth), height: 260 });
    window.addEventListener('resize', onResize);
    return () => {
      window.removeEventListener('resize', onResize);
      plot.destroy();
    };
  }, [props.stats]);
  const [xs, requests, errors] = dailySeries(props.stats);
  return (
    <figure class="chart" data-testid="usage-chart">
      <div ref={ref} />
      <figcaption>
        Requests and errors per day.{' '}
        <span data-testid="usage-chart-summary" data-days={xs.length}>
          {requests.reduce((a, b) => a + b, 0)} requests and {errors.reduce((a, b) => a + b, 0)} errors over {xs.length} days.
        </span>
      </figcaption>
    </figure>
  );
}
