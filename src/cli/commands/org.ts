/** `keyward org create|list|get|update|delete`. */
import { InvalidArgumentError, type Command } from 'commander';
import type { Organization } from '../../gen/keyward/admin/v1/key_admin';
import { withAdmin } from '../client';
import { organizationFields, organizationJson, organizationTable } from '../format';
import { countOption, parseBool, parsedOption } from '../options';
import { allOption, type CliContext, type JsonOption, leaf, limitOption, listText, output, pageTokenOption, pages } from './shared';

interface OrgLimitOptions {
  rateLimit?: number;
  monthlyQuota?: number;
  maxKeys?: number;
  anchorDay?: number;
  quotaAlerts?: number[];
}

/** `80,100` → [80, 100]; the server checks the range. */
function parsePercentList(text: string): number[] {
  return text.split(',').map((part) => {
    const n = Number(part.trim());
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected whole percentages, e.g. 80,100');
    return n;
  });
}

function addOrgLimitOptions(cmd: Command): Command {
  return cmd
    .addOption(countOption('--rate-limit <n>', 'default requests per minute of its keys; 0 = unlimited'))
    .addOption(countOption('--monthly-quota <n>', 'requests per billing month across all its keys; 0 = unlimited', Number.MAX_SAFE_INTEGER))
    .addOption(countOption('--max-keys <n>', 'most usable keys at once'))
    .addOption(countOption('--anchor-day <n>', 'day of the month (1-28, UTC) on which the quota month starts'))
    .addOption(
      parsedOption(
        '--quota-alerts <percents>',
        'quota percentages whose crossing is an org.quota_threshold event (default 80,100)',
        parsePercentList,
      ),
    );
}

export function orgCommands(program: Command, ctx: CliContext): void {
  const org = program.command('org').description('manage organizations (tenants)');

  addOrgLimitOptions(
    leaf(org, 'create', 'create an organization (administrator token only)').requiredOption('--name <name>', 'organization name'),
  ).action((opts: OrgLimitOptions & JsonOption & { name: string }) =>
    withAdmin(ctx.env, async (admin) => {
      const o = await admin.callRetrySafe('createOrganization', {
        name: opts.name,
        rateLimitPerMinute: opts.rateLimit,
        monthlyQuota: opts.monthlyQuota,
        maxKeys: opts.maxKeys,
        billingAnchorDay: opts.anchorDay,
        quotaAlertPercents: opts.quotaAlerts ?? [],
      });
      output(
        ctx,
        opts,
        () => organizationJson(o),
        () => organizationFields(o),
      );
    }),
  );

  leaf(org, 'list', 'list organizations')
    .option('--include-deleted', 'also list deleted organizations')
    .addOption(limitOption())
    .addOption(pageTokenOption())
    .addOption(allOption())
    .action((opts: JsonOption & { includeDeleted?: boolean; limit?: number; pageToken?: string; all?: boolean }) =>
      withAdmin(ctx.env, async (admin) => {
        const { items, next } = await pages<Organization>(opts.pageToken ?? '', opts.all === true, async (pageToken) => {
          const r = await admin.call('listOrganizations', {
            pageSize: opts.limit ?? 0,
            pageToken,
            includeDeleted: opts.includeDeleted === true,
          });
          return { items: r.organizations, next: r.nextPageToken };
        });
        output(
          ctx,
          opts,
          () => ({ organizations: items.map(organizationJson), nextPageToken: next }),
          () => listText('organizations', items.length, () => organizationTable(items), next),
        );
      }),
    );

  leaf(org, 'get <id>', 'show an organization').action((id: string, opts: JsonOption) =>
    withAdmin(ctx.env, async (admin) => {
      const o = await admin.call('getOrganization', { id });
      output(
        ctx,
        opts,
        () => organizationJson(o),
        () => organizationFields(o),
      );
    }),
  );

  addOrgLimitOptions(leaf(org, 'update <id>', 'change an organization; only the given fields change').option('--name <name>', 'new name'))
    .addOption(
      parsedOption('--active <bool>', 'true or false; an inactive organization cannot create keys and its keys are denied', parseBool),
    )
    .action((id: string, opts: OrgLimitOptions & JsonOption & { name?: string; active?: boolean }) =>
      withAdmin(ctx.env, async (admin) => {
        const o = await admin.call('updateOrganization', {
          id,
          name: opts.name,
          active: opts.active,
          rateLimitPerMinute: opts.rateLimit,
          monthlyQuota: opts.monthlyQuota,
          maxKeys: opts.maxKeys,
          billingAnchorDay: opts.anchorDay,
          quotaAlertPercents: opts.quotaAlerts ?? [],
        });
        output(
          ctx,
          opts,
          () => organizationJson(o),
          () => organizationFields(o),
        );
      }),
    );

  leaf(org, 'delete <id>', 'delete an organization: revoke all its keys and hide it (administrator token only; usage and audit are kept)')
    .requiredOption('--reason <text>', 'why; stored as the revoke reason of its keys and in the audit log')
    .action((id: string, opts: JsonOption & { reason: string }) =>
      withAdmin(ctx.env, async (admin) => {
        const r = await admin.callRetrySafe('deleteOrganization', { organizationId: id, reason: opts.reason });
        const o = r.organization;
        if (!o) throw new Error("the server's reply has no DeleteOrganizationResponse.organization");
        output(
          ctx,
          opts,
          () => ({ ...organizationJson(o), revokedKeys: r.revokedKeys }),
          () => `${organizationFields(o)}\nRevoked ${r.revokedKeys} key(s) of the organization.\n`,
        );
      }),
    );
}
