/**
 * The metering commands: `keyward key limits ID [--reset]`, `keyward quota --org ID`,
 * `keyward usage --org ID [--month YYYY-MM] [--key ID]`.
 */
import type { Command } from 'commander';
import type { Quota, RateLimitStatus, UsageStats, UsageTotals } from '../../gen/keyward/admin/v1/key_admin';
import { withAdmin } from '../client';
import { fields, iso, table } from '../format';
import { parsedOption, UsageError } from '../options';

interface Ctx {
  env: Record<string, string | undefined>;
  write(text: string): void;
}

function print(ctx: Ctx, json: boolean | undefined, value: () => unknown, human: () => string): void {
  ctx.write(json ? `${JSON.stringify(value(), null, 2)}\n` : human());
}

function rateJson(s: RateLimitStatus) {
  return {
    keyId: s.keyId,
    limit: s.limit,
    unlimited: s.limit === 0,
    remaining: s.remaining,
    resetSeconds: s.resetSeconds,
    limitSource: s.limitSource,
  };
}

function rateText(s: RateLimitStatus): string {
  if (s.limit === 0)
    return fields([
      ['key', s.keyId],
      ['limit', `unlimited (${s.limitSource})`],
    ]);
  return fields([
    ['key', s.keyId],
    ['limit', `${s.limit}/min (${s.limitSource})`],
    ['remaining', String(s.remaining)],
    ['reset', `${s.resetSeconds}s`],
  ]);
}

function quotaJson(q: Quota) {
  return {
    organizationId: q.organizationId,
    limit: q.limit,
    unlimited: q.limit === 0,
    used: q.used,
    remaining: q.remaining,
    percentUsed: q.percentUsed,
    periodStart: iso(q.periodStart),
    periodEnd: iso(q.periodEnd),
  };
}

function quotaText(q: Quota): string {
  return fields([
    ['organization', q.organizationId],
    ['limit', q.limit === 0 ? 'unlimited' : String(q.limit)],
    ['used', String(q.used)],
    ['remaining', q.limit === 0 ? '-' : String(q.remaining)],
    ['percent used', q.limit === 0 ? '-' : `${q.percentUsed}%`],
    ['period', `${iso(q.periodStart)} .. ${iso(q.periodEnd)}`],
  ]);
}

const ms = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(1));
const usd = (v: number) => v.toFixed(6).replace(/0+$/, '').replace(/\.$/, '.0');

function totalsRow(t: UsageTotals | undefined): string[] {
  const x = t ?? { requests: 0, errors4xx: 0, errors5xx: 0, tokens: 0, costUsd: 0 };
  return [
    String(x.requests),
    String(x.errors4xx),
    String(x.errors5xx),
    String(x.tokens),
    usd(x.costUsd),
    ms(x.avgDurationMs),
    ms(x.p95DurationMs),
  ];
}

const TOTAL_HEADERS = ['REQUESTS', '4XX', '5XX', 'TOKENS', 'COST-USD', 'AVG-MS', 'P95-MS'];

function usageText(u: UsageStats): string {
  let out = fields([
    ['organization', u.organizationId],
    [u.billingPeriod ? 'billing period' : 'month', u.billingPeriod ? `${iso(u.periodStart)} .. ${iso(u.periodEnd)}` : u.month],
    ['key', u.keyId || 'all keys'],
  ]);
  out += `\n${table(TOTAL_HEADERS, [totalsRow(u.totals)])}`;
  if (u.byEndpoint.length)
    out += `\nBy endpoint:\n${table(
      ['ENDPOINT', 'METHOD', ...TOTAL_HEADERS],
      u.byEndpoint.map((e) => [e.endpoint, e.method, ...totalsRow(e.totals)]),
    )}`;
  if (u.byKey.length)
    out += `\nBy key:\n${table(
      ['KEY', ...TOTAL_HEADERS],
      u.byKey.map((k) => [k.keyId, ...totalsRow(k.totals)]),
    )}`;
  if (u.byDay.length)
    out += `\nBy day:\n${table(
      ['DAY', ...TOTAL_HEADERS],
      u.byDay.map((d) => [d.day, ...totalsRow(d.totals)]),
    )}`;
  return out;
}

function parseMonth(value: string, option: string): string {
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(value)) throw new UsageError(`${option} must be YYYY-MM`);
  return value;
}

export function meteringCommands(program: Command, key: Command, ctx: Ctx): void {
  key
    .command('limits <id>')
    .description("show a key's rate limit: limit, remaining and reset; --reset clears its window")
    .option('--json', 'print one JSON document instead of text')
    .option('--reset', "clear the key's rate-limit window")
    .action((id: string, opts: { json?: boolean; reset?: boolean }) =>
      withAdmin(ctx.env, async (admin) => {
        const s = opts.reset ? await admin.call('resetRateLimit', { keyId: id }) : await admin.call('getRateLimitStatus', { keyId: id });
        print(
          ctx,
          opts.json,
          () => rateJson(s),
          () => rateText(s),
        );
      }),
    );

  program
    .command('quota')
    .description("an organization's monthly quota in its current billing period")
    .option('--json', 'print one JSON document instead of text')
    .requiredOption('--org <id>', 'organization id')
    .action((opts: { json?: boolean; org: string }) =>
      withAdmin(ctx.env, async (admin) => {
        const q = await admin.call('getQuota', { organizationId: opts.org });
        print(
          ctx,
          opts.json,
          () => quotaJson(q),
          () => quotaText(q),
        );
      }),
    );

  program
    .command('usage')
    .description('usage of one month (UTC) or billing period: totals and breakdowns by endpoint, key and day')
    .option('--json', 'print one JSON document instead of text')
    .requiredOption('--org <id>', 'organization id')
    .addOption(parsedOption('--month <YYYY-MM>', 'the month (default: the current one)', parseMonth))
    .option('--billing-period', "the organization's billing period (the one starting in --month, default: the current one)")
    .option('--key <id>', 'only this key')
    .action((opts: { json?: boolean; org: string; month?: string; key?: string; billingPeriod?: boolean }) =>
      withAdmin(ctx.env, async (admin) => {
        const u = await admin.call('getUsageStats', {
          organizationId: opts.org,
          month: opts.month ?? '',
          keyId: opts.key ?? '',
          billingPeriod: opts.billingPeriod === true,
        });
        print(
          ctx,
          opts.json,
          () => ({ ...u, periodStart: iso(u.periodStart), periodEnd: iso(u.periodEnd) }),
          () => usageText(u),
        );
      }),
    );
}
