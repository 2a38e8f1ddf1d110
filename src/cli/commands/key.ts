/** `keyward key create|list|get|update|disable|enable|revoke|rotate`; secrets are printed once, at creation and rotation. */
import { type Command, Option } from 'commander';
import { Environment, type ApiKey, type CreateKeyRequest, type UpdateKeyRequest } from '../../gen/keyward/admin/v1/key_admin';
import { withAdmin } from '../client';
import { iso, keyFields, keyJson, keyTable, SECRET_NOTE } from '../format';
import { collectMetadata, countOption, parsedOption, parseEnvironment, parseScopes, parseTime } from '../options';
import { allOption, type CliContext, type JsonOption, leaf, limitOption, listText, output, pageTokenOption, pages } from './shared';

/** An UpdateKeyRequest that changes nothing. */
const NO_CHANGE: UpdateKeyRequest = {
  id: '',
  scopes: undefined,
  expiresAt: undefined,
  clearExpiresAt: false,
  clearRateLimitPerMinute: false,
  metadata: undefined,
};

function secretText(keyText: string, secret: string): string {
  return `${keyText}\nkey: ${secret}\n\n${SECRET_NOTE}\n`;
}

export function keyCommands(program: Command, ctx: CliContext): Command {
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
          const request: Omit<CreateKeyRequest, 'requestId'> = {
            organizationId: opts.org,
            name: opts.name,
            environment: opts.env ?? Environment.ENVIRONMENT_UNSPECIFIED,
            scopes: opts.scopes ?? [],
            metadata: opts.metadata ?? {},
            expiresInDays: opts.expiresInDays,
            expiresAt: opts.expiresAt,
            rateLimitPerMinute: opts.rateLimit,
          };
          const r = await admin.callRetrySafe('createKey', request);
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

  // UpdateKey with only `enabled`: audited as key.disable / key.enable.
  for (const [verb, enabled, what] of [
    ['disable', false, 'disable a key: it is refused (disabled_api_key) until enabled again'],
    ['enable', true, 'enable a disabled key again'],
  ] as const) {
    leaf(key, `${verb} <id>`, what).action((id: string, opts: JsonOption) =>
      withAdmin(ctx.env, async (admin) => showKey(ctx, opts, await admin.call('updateKey', { ...NO_CHANGE, id, enabled }))),
    );
  }

  leaf(key, 'revoke <id>', 'revoke a key at once')
    .requiredOption('--reason <text>', 'why; stored with the key and in the audit log')
    .action((id: string, opts: JsonOption & { reason: string }) =>
      withAdmin(ctx.env, async (admin) => showKey(ctx, opts, await admin.callRetrySafe('revokeKey', { id, reason: opts.reason }))),
    );

  leaf(key, 'rotate <id>', 'issue a successor key and print its secret (shown only once); the old key expires after a grace period')
    .addOption(
      countOption('--grace-seconds <n>', 'how long the old key keeps working (server default KEYWARD_ROTATION_GRACE_SECONDS); 0 = end now'),
    )
    .action((id: string, opts: JsonOption & { graceSeconds?: number }) =>
      withAdmin(ctx.env, async (admin) => {
        const r = await admin.callRetrySafe('rotateKey', { id, gracePeriodSeconds: opts.graceSeconds });
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
