/** `keyward audit`: audit events, newest first, with filters and paging. */
import type { Command } from 'commander';
import type { AuditEvent } from '../../gen/keyward/admin/v1/key_admin';
import { withAdmin } from '../client';
import { auditEventJson, auditTable } from '../format';
import { parsedOption, parseTime } from '../options';
import { allOption, type CliContext, type JsonOption, leaf, limitOption, listText, output, pageTokenOption, pages } from './shared';

export function auditCommand(ctx: CliContext, program: Command): void {
  leaf(program, 'audit', 'list audit events, newest first')
    .option('--org <id>', 'only this organization')
    .option('--key <id>', 'only this key')
    .option('--action <action>', 'only this action, e.g. key.revoke')
    .addOption(parsedOption('--since <time>', 'from this ISO 8601 time (inclusive)', parseTime))
    .addOption(parsedOption('--until <time>', 'up to this ISO 8601 time (exclusive)', parseTime))
    .addOption(limitOption())
    .addOption(pageTokenOption())
    .addOption(allOption())
    .action(
      (
        opts: JsonOption & {
          org?: string;
          key?: string;
          action?: string;
          since?: Date;
          until?: Date;
          limit?: number;
          pageToken?: string;
          all?: boolean;
        },
      ) =>
        withAdmin(ctx.env, async (admin) => {
          const { items, next } = await pages<AuditEvent>(opts.pageToken ?? '', opts.all === true, async (pageToken) => {
            const r = await admin.call('listAuditEvents', {
              organizationId: opts.org ?? '',
              keyId: opts.key ?? '',
              action: opts.action ?? '',
              startTime: opts.since,
              endTime: opts.until,
              pageSize: opts.limit ?? 0,
              pageToken,
            });
            return { items: r.events, next: r.nextPageToken };
          });
          output(
            ctx,
            opts,
            () => ({ events: items.map(auditEventJson), nextPageToken: next }),
            () => listText('audit events', items.length, () => auditTable(items), next),
          );
        }),
    );
}
