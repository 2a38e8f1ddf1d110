/**
 * The `keyward` commands. Client commands map their options one to one onto the
 * KeyAdmin request (an unset option leaves the optional field unset, so the server
 * applies its default) and print the reply as JSON (`--json`) or for humans.
 */
import { Command, Option } from 'commander';
import {
  Environment,
  type ApiKey,
  type AuditEvent,
  type CreateKeyRequest,
  type Organization,
  type UpdateKeyRequest,
} from '../gen/keyward/admin/v1/key_admin';
import { withAdmin } from './client';
import { healthCommand } from './health';
import { meteringCommands } from './metering';
import {
  auditEventJson,
  auditTable,
  iso,
  keyFields,
  keyJson,
  keyTable,
  organizationFields,
  organizationJson,
  organizationTable,
  SECRET_NOTE,
} from './format';
import { collectMetadata, countOption, INT32_MAX, parseBool, parsedOption, parseEnvironment, parseScopes, parseTime } from './options';

export interface CliContext {
  env: Record<string, string | undefined>;
  /** Writes to stdout. */
  write(text: string): void;
}

/** The server entry points, in src/main.ts; loaded only by `serve` and `migrate`. */
interface ServerMain {
  serveCommand(options: { migrate: boolean }): Promise<void>;
  migrateCommand(): Promise<void>;
}

function loadServerMain(): ServerMain {
  // Lazy, so that client commands never load the ORM and the database drivers.
  return require('../main') as ServerMain;
}

interface JsonOption {
  json?: boolean;
}

/** A leaf command: every one takes --json. */
function leaf(parent: Command, nameAndArgs: string, description: string): Command {
  return parent.command(nameAndArgs).description(description).option('--json', 'print one JSON document instead of text');
}

function output(ctx: CliContext, opts: JsonOption, json: () => unknown, human: () => string): void {
  ctx.write(opts.json ? `${JSON.stringify(json(), null, 2)}\n` : human());
}

interface Page<T> {
  items: T[];
  next: string;
}

/** One page from `pageToken`, or with `all` every page from there on. */
async function pages<T>(pageToken: string, all: boolean, fetch: (token: string) => Promise<Page<T>>): Promise<Page<T>> {
  const items: T[] = [];
  let token = pageToken;
  for (;;) {
    const page = await fetch(token);
    items.push(...page.items);
    if (!all || page.next === '' || page.next === token) return { items, next: all ? '' : page.next };
    token = page.next;
  }
}

function listText(noun: string, count: number, tableText: () => string, next: string): string {
  let text = count === 0 ? `No ${noun} found.\n` : tableText();
  if (next !== '') text += `\nMore results: repeat with --page-token ${next} (or use --all).\n`;
  return text;
}

const limitOption = () => countOption('--limit <n>', 'page size (server default 50, at most 1000)', INT32_MAX);
const pageTokenOption = () => new Option('--page-token <token>', 'continue from a previous page');
const allOption = () => new Option('--all', 'follow next-page tokens and list everything');

// ---------------------------------------------------------------- organizations

interface OrgLimitOptions {
  rateLimit?: number;
  monthlyQuota?: number;
  maxKeys?: number;
  anchorDay?: number;
}

function addOrgLimitOptions(cmd: Command): Command {
  return cmd
    .addOption(countOption('--rate-limit <n>', 'default requests per minute of its keys; 0 = unlimited'))
    .addOption(countOption('--monthly-quota <n>', 'requests per billing month across all its keys; 0 = unlimited', Number.MAX_SAFE_INTEGER))
    .addOption(countOption('--max-keys <n>', 'most usable keys at once'))
    .addOption(countOption('--anchor-day <n>', 'day of the month (1-28, UTC) on which the quota month starts'));
}

function orgCommands(program: Command, ctx: CliContext): void {
  const org = program.command('org').description('manage organizations (tenants)');

  addOrgLimitOptions(
    leaf(org, 'create', 'create an organization (administrator token only)').requiredOption('--name <name>', 'organization name'),
  ).action((opts: OrgLimitOptions & JsonOption & { name: string }) =>
    withAdmin(ctx.env, async (admin) => {
      const o = await admin.call('createOrganization', {
        name: opts.name,
        rateLimitPerMinute: opts.rateLimit,
        monthlyQuota: opts.monthlyQuota,
        maxKeys: opts.maxKeys,
        billingAnchorDay: opts.anchorDay,
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
    .addOption(limitOption())
    .addOption(pageTokenOption())
    .addOption(allOption())
    .action((opts: JsonOption & { limit?: number; pageToken?: string; all?: boolean }) =>
      withAdmin(ctx.env, async (admin) => {
        const { items, next } = await pages<Organization>(opts.pageToken ?? '', opts.all === true, async (pageToken) => {
          const r = await admin.call('listOrganizations', { pageSize: opts.limit ?? 0, pageToken });
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
        });
        output(
          ctx,
          opts,
          () => organizationJson(o),
          () => organizationFields(o),
        );
      }),
    );
}

// ---------------------------------------------------------------- keys

function secretText(keyText: string, secret: string): string {
  return `${keyText}\nkey: ${secret}\n\n${SECRET_NOTE}\n`;
}

function keyCommands(program: Command, ctx: CliContext): Command {
  const key = program.command('key').description('manage API keys');

  leaf(key, 'create', 'create an API key and print its secret (shown only once)')
    .requiredOption('--org <id>', 'organization id')
    .requiredOption('--name <name>', 'key name')
    .addOption(parsedOption('--env <env>', 'live or test (server default live)', parseEnvironment))
    .addOption(parsedOption('--scopes <list>', 'comma-separated scopes, e.g. chat,agents:read', parseScopes))
    .addOption(countOption('--expires-in-days <n>', 'expire after this many days (default: never)').conflicts('expiresAt'))
    .addOption(parsedOption('--expires-at <time>', 'expire at this ISO 8601 time', parseTime))
    .addOption(countOption('--rate-limit <n>', "requests per minute; 0 = unlimited (default: the organization's)"))
    .addOption(new Option('--metadata <key=value>', 'a label; repeat for more').argParser(collectMetadata))
    .action(
      (
        opts: JsonOption & {
          org: string;
          name: string;
          env?: Environment;
          scopes?: string[];
          expiresInDays?: number;
          expiresAt?: Date;
          rateLimit?: number;
          metadata?: Record<string, string>;
        },
      ) =>
        withAdmin(ctx.env, async (admin) => {
          const request: CreateKeyRequest = {
            organizationId: opts.org,
            name: opts.name,
            environment: opts.env ?? Environment.ENVIRONMENT_UNSPECIFIED,
            scopes: opts.scopes ?? [],
            metadata: opts.metadata ?? {},
            expiresInDays: opts.expiresInDays,
            expiresAt: opts.expiresAt,
            rateLimitPerMinute: opts.rateLimit,
          };
          const r = await admin.call('createKey', request);
          const k = required(r.key, 'CreateKeyResponse.key');
          output(
            ctx,
            opts,
            () => withSecret(keyJson(k), r.secret),
            () => secretText(keyFields(k), r.secret),
          );
        }),
    );

  leaf(key, 'list', "list an organization's keys")
    .requiredOption('--org <id>', 'organization id')
    .option('--include-revoked', 'also list revoked keys (expired keys are always listed)')
    .addOption(limitOption())
    .addOption(pageTokenOption())
    .addOption(allOption())
    .action((opts: JsonOption & { org: string; includeRevoked?: boolean; limit?: number; pageToken?: string; all?: boolean }) =>
      withAdmin(ctx.env, async (admin) => {
        const { items, next } = await pages<ApiKey>(opts.pageToken ?? '', opts.all === true, async (pageToken) => {
          const r = await admin.call('listKeys', {
            organizationId: opts.org,
            includeRevoked: opts.includeRevoked === true,
            pageSize: opts.limit ?? 0,
            pageToken,
          });
          return { items: r.keys, next: r.nextPageToken };
        });
        output(
          ctx,
          opts,
          () => ({ keys: items.map(keyJson), nextPageToken: next }),
          () => listText('keys', items.length, () => keyTable(items), next),
        );
      }),
    );

  leaf(key, 'get <id>', 'show a key (never its secret)').action((id: string, opts: JsonOption) =>
    withAdmin(ctx.env, async (admin) => showKey(ctx, opts, await admin.call('getKey', { id }))),
  );

  leaf(key, 'update <id>', 'change a key; only the given fields change')
    .option('--name <name>', 'new name')
    .addOption(parsedOption('--scopes <list>', 'replace the scopes (comma-separated; "" for none)', parseScopes))
    .addOption(countOption('--rate-limit <n>', 'requests per minute; 0 = unlimited').conflicts('clearRateLimit'))
    .option('--clear-rate-limit', "remove the key's own limit so the organization's applies")
    .addOption(parsedOption('--expires-at <time>', 'new expiry, an ISO 8601 time in the future', parseTime).conflicts('clearExpiry'))
    .option('--clear-expiry', 'make the key never expire')
    .addOption(
      new Option('--metadata <key=value>', 'replace the metadata with these labels; repeat for more')
        .argParser(collectMetadata)
        .conflicts('clearMetadata'),
    )
    .option('--clear-metadata', 'remove all metadata')
    .action(
      (
        id: string,
        opts: JsonOption & {
          name?: string;
          scopes?: string[];
          rateLimit?: number;
          clearRateLimit?: boolean;
          expiresAt?: Date;
          clearExpiry?: boolean;
          metadata?: Record<string, string>;
          clearMetadata?: boolean;
        },
      ) =>
        withAdmin(ctx.env, async (admin) => {
          const request: UpdateKeyRequest = {
            id,
            name: opts.name,
            scopes: opts.scopes ? { values: opts.scopes } : undefined,
            expiresAt: opts.expiresAt,
            clearExpiresAt: opts.clearExpiry === true,
            rateLimitPerMinute: opts.rateLimit,
            clearRateLimitPerMinute: opts.clearRateLimit === true,
            metadata: opts.metadata ? { entries: opts.metadata } : opts.clearMetadata ? { entries: {} } : undefined,
          };
          showKey(ctx, opts, await admin.call('updateKey', request));
        }),
    );

  leaf(key, 'revoke <id>', 'revoke a key at once')
    .requiredOption('--reason <text>', 'why; stored with the key and in the audit log')
    .action((id: string, opts: JsonOption & { reason: string }) =>
      withAdmin(ctx.env, async (admin) => showKey(ctx, opts, await admin.call('revokeKey', { id, reason: opts.reason }))),
    );

  leaf(key, 'rotate <id>', 'issue a successor key and print its secret (shown only once); the old key expires after a grace period')
    .addOption(
      countOption('--grace-seconds <n>', 'how long the old key keeps working (server default KEYWARD_ROTATION_GRACE_SECONDS); 0 = end now'),
    )
    .action((id: string, opts: JsonOption & { graceSeconds?: number }) =>
      withAdmin(ctx.env, async (admin) => {
        const r = await admin.call('rotateKey', { id, gracePeriodSeconds: opts.graceSeconds });
        const k = required(r.newKey, 'RotateKeyResponse.new_key');
        const old = required(r.oldKey, 'RotateKeyResponse.old_key');
        output(
          ctx,
          opts,
          () => ({
            ...withSecret(keyJson(k), r.secret),
            oldKeyId: old.id,
            oldKeyExpiresAt: iso(old.expiresAt),
            oldKey: keyJson(old),
          }),
          () =>
            secretText(`${keyFields(k)}\nThe old key ${old.id} keeps working until ${iso(old.expiresAt) ?? 'further notice'}.\n`, r.secret),
        );
      }),
    );

  return key;
}

/** A key's JSON view with the full secret as `key`, right after `id`. */
function withSecret(view: ReturnType<typeof keyJson>, secret: string) {
  const { id, ...rest } = view;
  return { id, key: secret, ...rest };
}

function showKey(ctx: CliContext, opts: JsonOption, k: ApiKey): void {
  output(
    ctx,
    opts,
    () => keyJson(k),
    () => keyFields(k),
  );
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`the server's reply has no ${what}`);
  return value;
}

// ---------------------------------------------------------------- audit

function auditCommand(ctx: CliContext, program: Command): void {
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

// ---------------------------------------------------------------- server

function serverCommands(program: Command): void {
  program
    .command('serve')
    .description('run the ext_authz and KeyAdmin gRPC servers until SIGINT/SIGTERM')
    .option('--no-migrate', 'do not apply pending database migrations at start')
    .action(async (opts: { migrate: boolean }) => {
      await loadServerMain().serveCommand({ migrate: opts.migrate });
    });

  program
    .command('migrate')
    .description('apply pending database migrations and exit')
    .action(async () => {
      await loadServerMain().migrateCommand();
    });
}

/** Adds every command to `program`; configure `program` (output, exitOverride) first, as subcommands copy its settings. */
export function registerCommands(program: Command, ctx: CliContext): void {
  serverCommands(program);
  healthCommand(program, ctx);
  orgCommands(program, ctx);
  const key = keyCommands(program, ctx);
  meteringCommands(program, key, ctx);
  auditCommand(ctx, program);
}
