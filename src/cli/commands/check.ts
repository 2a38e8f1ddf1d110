/**
 * `keyward check`: one real ext_authz Check (envoy.service.auth.v3.Authorization/Check)
 * sent to the authz port at KEYWARD_AUTHZ_URL (default 127.0.0.1:9191; TLS with the
 * KEYWARD_AUTHZ_TLS* settings), as Envoy would send it, and keyward's answer printed:
 * the decision and its code, the headers set on (and removed from) the upstream
 * request, the headers added to the client's response, and a denial's HTTP status,
 * headers and body.
 *
 * Contract:
 *  - The request carries `:method`, `:path`, `:authority` (--host) and the --header
 *    pairs (names lower-cased, as Envoy sends them); context_extensions are the
 *    --context-extension pairs (e.g. required_scopes=chat:write).
 *  - The key is sent as `authorization: Bearer <key>`, or bare in --key-header NAME.
 *    It comes from --key, --key-file PATH or --key-stdin (the last two keep it out of
 *    shell history; surrounding whitespace and the final newline are dropped). None
 *    of them: no credential is sent. The key is never printed, in output or errors.
 *  - The code of a denial is keyward's error code: dynamic_metadata.error_code, else
 *    the `x-keyward-error-code` header, else the body's error.code.
 *  - Exit status: 0 allowed; 3 denied (the answer is printed on stdout); 1 the Check
 *    failed (connection, deadline, gRPC error: `error: <code>: <message>`); 2 bad
 *    usage or configuration.
 *  - --json prints one object: allowed, code ('ok' or the denial code), http_status
 *    (denied only), upstream_headers, upstream_headers_removed, response_headers
 *    (objects name → value), body (the denial body, parsed when it is JSON; null when
 *    allowed) and dynamic_metadata.
 */
import { readFileSync } from 'node:fs';
import { credentials, Metadata, type ChannelCredentials, type ChannelOptions, type ServiceError } from '@grpc/grpc-js';
import { Command, Option } from 'commander';
import { ConfigError, loadAuthzClientConfig } from '../../config';
import { clientChannelCredentials } from '../../tls/client';
import { clientTlsVariables, TlsFileError } from '../../tls/files';
import type { HeaderValueOption } from '../../gen/envoy/config/core/v3/base';
import { AuthorizationClient, CheckRequest, type CheckResponse } from '../../gen/envoy/service/auth/v3/external_auth';
import { DEFAULT_DEADLINE_MS, describeCallError, redact } from '../client';
import { CliError, countOption, ExitStatus, UsageError } from '../options';
import type { CliContext } from './shared';

/** The exit status of a denied Check. */
export const DENIED_EXIT = 3;

interface CheckOptions {
  key?: string;
  keyFile?: string;
  keyStdin?: boolean;
  keyHeader: string;
  method: string;
  path: string;
  host?: string;
  header?: Record<string, string>;
  contextExtension?: Record<string, string>;
  timeoutMs?: number;
  json?: boolean;
}

/** What --json prints. */
export interface CheckResult {
  allowed: boolean;
  code: string;
  http_status?: number;
  upstream_headers: Record<string, string>;
  upstream_headers_removed: string[];
  response_headers: Record<string, string>;
  body: unknown;
  dynamic_metadata: Record<string, unknown>;
}

function collectPairs(option: string, lower: boolean) {
  return (value: string, previous: Record<string, string> | undefined): Record<string, string> => {
    const eq = value.indexOf('=');
    if (eq <= 0) throw new UsageError(`${option} must be name=value`);
    const name = lower ? value.slice(0, eq).toLowerCase() : value.slice(0, eq);
    return { ...previous, [name]: value.slice(eq + 1) };
  };
}

async function readStream(stream: AsyncIterable<string | Buffer>): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
  return text;
}

/** The key to send, or undefined for none; a UsageError never quotes it. */
async function readKey(opts: CheckOptions, ctx: CliContext): Promise<string | undefined> {
  const given = [opts.key !== undefined, opts.keyFile !== undefined, opts.keyStdin === true].filter(Boolean).length;
  if (given > 1) throw new UsageError('give at most one of --key, --key-file and --key-stdin');
  if (opts.key === '-') throw new UsageError('--key - is not standard input: use --key-stdin');
  let key: string | undefined = opts.key;
  if (opts.keyFile !== undefined) {
    try {
      key = readFileSync(opts.keyFile, 'utf8');
    } catch (e) {
      throw new UsageError(`--key-file: cannot read ${opts.keyFile} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  } else if (opts.keyStdin) {
    key = await readStream(ctx.stdin ?? process.stdin);
  }
  if (key === undefined) return undefined;
  key = key.trim();
  if (key === '') throw new UsageError('the key is empty');
  if (!/^[\x21-\x7e]+$/.test(key)) throw new UsageError('the key must be printable ASCII without spaces');
  return key;
}

function headerMap(options: readonly HeaderValueOption[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const o of options ?? []) {
    if (!o.header) continue;
    const value = o.header.value !== '' ? o.header.value : Buffer.from(o.header.rawValue ?? []).toString('utf8');
    out[o.header.key] = out[o.header.key] === undefined ? value : `${out[o.header.key]}, ${value}`;
  }
  return out;
}

/** keyward's CheckResponse as the result printed. */
export function resultOf(r: CheckResponse): CheckResult {
  const metadata = (r.dynamicMetadata ?? {}) as Record<string, unknown>;
  const denied = r.deniedResponse;
  if (!denied && (r.status?.code ?? 0) === 0) {
    return {
      allowed: true,
      code: 'ok',
      upstream_headers: headerMap(r.okResponse?.headers),
      upstream_headers_removed: [...(r.okResponse?.headersToRemove ?? [])],
      response_headers: headerMap(r.okResponse?.responseHeadersToAdd),
      body: null,
      dynamic_metadata: metadata,
    };
  }
  const headers = headerMap(denied?.headers);
  let body: unknown = denied?.body ?? '';
  try {
    body = JSON.parse(denied?.body ?? '');
  } catch {
    // not JSON: kept as text
  }
  const bodyCode = (body as { error?: { code?: unknown } } | null)?.error?.code;
  const code =
    (typeof metadata.error_code === 'string' && metadata.error_code) ||
    headers['x-keyward-error-code'] ||
    (typeof bodyCode === 'string' && bodyCode) ||
    `grpc_${r.status?.code ?? 'unknown'}`;
  return {
    allowed: false,
    code,
    ...(denied?.status?.code !== undefined && { http_status: denied.status.code }),
    upstream_headers: {},
    upstream_headers_removed: [],
    response_headers: headers,
    body,
    dynamic_metadata: metadata,
  };
}

function headerLines(title: string, headers: Record<string, string>): string {
  const names = Object.keys(headers);
  if (names.length === 0) return `${title}: none\n`;
  return `${title}:\n${names.map((k) => `  ${k}: ${headers[k]}\n`).join('')}`;
}

export function resultText(r: CheckResult): string {
  if (r.allowed) {
    let text = 'decision: allowed\n' + headerLines('upstream headers', r.upstream_headers);
    if (r.upstream_headers_removed.length > 0) text += `removed from upstream: ${r.upstream_headers_removed.join(', ')}\n`;
    return text + headerLines('response headers', r.response_headers);
  }
  const body = typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
  return (
    `decision: denied (${r.code})${r.http_status !== undefined ? `, HTTP ${r.http_status}` : ''}\n` +
    headerLines('response headers', r.response_headers) +
    `body: ${body}\n`
  );
}

function channel(env: CliContext['env']): { client: AuthorizationClient; url: string } {
  let config;
  try {
    config = loadAuthzClientConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError('invalid_config', e.message, 2);
    throw e;
  }
  let creds: ChannelCredentials = credentials.createInsecure();
  const options: ChannelOptions = {};
  const tls = config.authzTls;
  if (tls) {
    // As withAdmin: grpc-js over TLS to an IP address triggers Node's DEP0123 warning.
    process.noDeprecation = true;
    try {
      creds = clientChannelCredentials(tls, clientTlsVariables('authz'));
    } catch (e) {
      if (e instanceof TlsFileError) throw new CliError('invalid_config', e.message, 2);
      throw e;
    }
    if (tls.serverName !== undefined) {
      options['grpc.ssl_target_name_override'] = tls.serverName;
      options['grpc.default_authority'] = tls.serverName;
    }
  }
  return { client: new AuthorizationClient(config.authzUrl, creds, options), url: config.authzUrl };
}

export function checkCommand(program: Command, ctx: CliContext): void {
  program
    .command('check')
    .description(
      'send one ext_authz Check to the authz port (KEYWARD_AUTHZ_URL, default 127.0.0.1:9191) and print the decision; exit 0 allowed, 3 denied',
    )
    .requiredOption('--method <method>', 'the HTTP method, e.g. POST')
    .requiredOption('--path <path>', 'the request path with its query string, e.g. /v1/chat')
    .option('--key <key>', 'the API key (visible in shell history: prefer --key-file or --key-stdin); none: no credential')
    .option('--key-file <path>', 'read the API key from this file')
    .option('--key-stdin', 'read the API key from standard input')
    .addOption(
      new Option('--key-header <name>', 'send the key bare in this header instead of authorization: Bearer').default('authorization'),
    )
    .option('--host <host>', 'the :authority (Host) of the request')
    .option('--header <name=value>', 'a request header (repeatable)', collectPairs('--header', true))
    .option(
      '--context-extension <name=value>',
      'a context extension, e.g. required_scopes=a,b (repeatable)',
      collectPairs('--context-extension', false),
    )
    .addOption(countOption('--timeout-ms <n>', `the Check's deadline (default ${DEFAULT_DEADLINE_MS})`, 600_000))
    .option('--json', 'print one JSON document instead of text')
    .action(async (opts: CheckOptions) => {
      const key = await readKey(opts, ctx);
      const keyHeader = opts.keyHeader.toLowerCase();
      if (!/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(keyHeader)) throw new UsageError('--key-header must be a header name');
      const headers: Record<string, string> = {
        ...opts.header,
        ':method': opts.method.toUpperCase(),
        ':path': opts.path,
        ':scheme': 'http',
        ...(opts.host !== undefined && { ':authority': opts.host }),
      };
      if (key !== undefined) headers[keyHeader] = keyHeader === 'authorization' ? `Bearer ${key}` : key;
      const queryAt = opts.path.indexOf('?');
      const request = CheckRequest.fromPartial({
        attributes: {
          request: {
            http: {
              method: opts.method.toUpperCase(),
              path: opts.path,
              host: opts.host ?? '',
              scheme: 'http',
              protocol: 'HTTP/1.1',
              query: queryAt >= 0 ? opts.path.slice(queryAt + 1) : '',
              headers,
            },
          },
          contextExtensions: opts.contextExtension ?? {},
        },
      });
      const { client } = channel(ctx.env);
      let response: CheckResponse;
      try {
        response = await new Promise<CheckResponse>((resolve, reject) => {
          const deadline = Date.now() + (opts.timeoutMs ?? DEFAULT_DEADLINE_MS);
          client.check(request, new Metadata(), { deadline }, (e: ServiceError | null, r?: CheckResponse) => (e ? reject(e) : resolve(r!)));
        });
      } catch (e) {
        const { code, message } = describeCallError(e);
        throw new CliError(code, redact(message, key), 1);
      } finally {
        client.close();
      }
      const result = resultOf(response);
      // keyward never echoes the key; redacted all the same, should a header ever carry it.
      ctx.write(redact(opts.json ? `${JSON.stringify(result, null, 2)}\n` : resultText(result), key));
      if (!result.allowed) throw new ExitStatus(DENIED_EXIT);
    });
}
