/**
 * The CLI's connection to KeyAdmin: a channel to KEYWARD_ADMIN_URL (plaintext, or TLS
 * with the KEYWARD_ADMIN_TLS* settings), the bearer credential on every call, a
 * deadline on every call, and the extraction of keyward's error code from a failed call.
 * Changes that KeyAdmin makes safe to retry (request_id) are retried on UNAVAILABLE.
 */
import { randomUUID } from 'node:crypto';
import {
  credentials,
  Metadata,
  status,
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientUnaryCall,
  type ServiceError,
} from '@grpc/grpc-js';
import { ConfigError, loadClientConfig, type ClientConfig } from '../config';
import { clientChannelCredentials } from '../tls/client';
import { TlsFileError } from '../tls/files';
import { KeyAdminClient, KeyAdminService } from '../gen/keyward/admin/v1/key_admin';
import { Status } from '../gen/google/rpc/status';
import { ErrorInfo } from '../gen/google/rpc/error_details';
import { CliError } from './options';

export const DEFAULT_DEADLINE_MS = 10_000;
const ERROR_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.ErrorInfo';

type Env = Record<string, string | undefined>;
type Service = typeof KeyAdminService;
export type MethodName = keyof Service;
export type RequestOf<M extends MethodName> = Parameters<Service[M]['requestSerialize']>[0];
export type ResponseOf<M extends MethodName> = ReturnType<Service[M]['responseDeserialize']>;
/** The methods whose requests carry an AIP-155 request_id. */
export type RetrySafeMethod = { [M in MethodName]: RequestOf<M> extends { requestId: string } ? M : never }[MethodName];

/**
 * How callRetrySafe retries: at most `attempts` calls in all, the n-th retry after
 * about baseDelayMs * 2^(n-1) (±20 %). Each attempt has its own deadline.
 */
export const RETRY = { attempts: 4, baseDelayMs: 200 };

type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response?: Res) => void,
) => ClientUnaryCall;

export class AdminConnection {
  private readonly client: KeyAdminClient;

  constructor(
    address: string,
    private readonly token: string,
    private readonly deadlineMs: number = DEFAULT_DEADLINE_MS,
    tls?: ClientConfig['adminTls'],
  ) {
    let creds: ChannelCredentials = credentials.createInsecure();
    const options: ChannelOptions = {};
    if (tls) {
      creds = clientChannelCredentials(tls);
      if (tls.serverName !== undefined) {
        options['grpc.ssl_target_name_override'] = tls.serverName;
        options['grpc.default_authority'] = tls.serverName;
      }
    }
    this.client = new KeyAdminClient(address, creds, options);
  }

  /** One unary call with the credential and a deadline; rejects with the grpc ServiceError. */
  call<M extends MethodName>(method: M, request: RequestOf<M>): Promise<ResponseOf<M>> {
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${this.token}`);
    const fn = this.client[method] as unknown as UnaryMethod<RequestOf<M>, ResponseOf<M>>;
    return new Promise((resolve, reject) => {
      fn.call(this.client, request, metadata, { deadline: Date.now() + this.deadlineMs }, (error, response) => {
        if (error) reject(error);
        else resolve(response as ResponseOf<M>);
      });
    });
  }

  /**
   * A change KeyAdmin makes safe to retry: sent with a fresh request_id (a UUID), and
   * sent again with the same one while the answer is UNAVAILABLE (the server, a proxy
   * or the network went away, or the store is unreachable), up to RETRY.attempts
   * calls. The server applies the change at most once and answers every retry with
   * the first call's response.
   */
  async callRetrySafe<M extends RetrySafeMethod>(method: M, request: Omit<RequestOf<M>, 'requestId'>): Promise<ResponseOf<M>> {
    const withId = { ...request, requestId: randomUUID() } as unknown as RequestOf<M>;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.call(method, withId);
      } catch (e) {
        if (attempt >= RETRY.attempts || !isServiceError(e) || e.code !== status.UNAVAILABLE) throw e;
        const delay = RETRY.baseDelayMs * 2 ** (attempt - 1) * (0.8 + Math.random() * 0.4);
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  close(): void {
    this.client.close();
  }
}

/**
 * Loads the client configuration. A bad or missing setting is a CliError with exit
 * code 2; its message names the variable and never contains the token.
 */
export function clientSettings(env: Env): { adminUrl: string; token: string; tls?: ClientConfig['adminTls'] } {
  let config;
  try {
    config = loadClientConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError('invalid_config', e.message, 2);
    throw e;
  }
  const token = config.adminToken;
  if (token === undefined || token === '') {
    throw new CliError('missing_credentials', 'set KEYWARD_ADMIN_TOKEN or KEYWARD_ADMIN_TOKEN_FILE', 2);
  }
  if (!/^[\x21-\x7e]+$/.test(token)) {
    const variable = env.KEYWARD_ADMIN_TOKEN ? 'KEYWARD_ADMIN_TOKEN' : 'KEYWARD_ADMIN_TOKEN_FILE';
    throw new CliError('invalid_config', `${variable}: the token must be printable ASCII without spaces`, 2);
  }
  return { adminUrl: config.adminUrl, token, ...(config.adminTls && { tls: config.adminTls }) };
}

/** Opens a connection, runs `fn`, and closes it; a failed call becomes a CliError (exit 1). */
export async function withAdmin<T>(env: Env, fn: (admin: AdminConnection) => Promise<T>): Promise<T> {
  const { adminUrl, token, tls } = clientSettings(env);
  // Over TLS to an IP address, grpc-js passes the address as the TLS server name and
  // Node prints a deprecation warning (DEP0123) that would break the one-line output.
  if (tls) process.noDeprecation = true;
  let admin: AdminConnection;
  try {
    admin = new AdminConnection(adminUrl, token, DEFAULT_DEADLINE_MS, tls);
  } catch (e) {
    // The TLS files were checked with the settings; this is one that changed since.
    if (e instanceof TlsFileError) throw new CliError('invalid_config', e.message, 2);
    throw e;
  }
  try {
    return await fn(admin);
  } catch (e) {
    const { code, message } = describeCallError(e);
    throw new CliError(code, redact(message, token), 1);
  } finally {
    admin.close();
  }
}

export function isServiceError(e: unknown): e is ServiceError {
  return (
    e instanceof Error && typeof (e as Partial<ServiceError>).code === 'number' && (e as Partial<ServiceError>).metadata instanceof Metadata
  );
}

/**
 * The keyward error code and message of a failure: the `x-error-code` trailer, else
 * ErrorInfo.reason from `grpc-status-details-bin`, else the gRPC status name in
 * lower case (e.g. `unavailable`). The message is made one line.
 */
export function describeCallError(e: unknown): { code: string; message: string } {
  if (!isServiceError(e)) {
    return { code: 'internal', message: oneLine(e instanceof Error ? e.message : String(e)) };
  }
  const details = statusDetails(e.metadata);
  const code = trailerCode(e.metadata) ?? errorInfoReason(details) ?? grpcStatusName(e.code);
  // grpc-js ends its own connection errors with an empty "Resolution note:".
  const message = oneLine(e.details || details?.message || e.message).replace(/\s*Resolution note:$/, '');
  return { code, message };
}

function trailerCode(metadata: Metadata): string | undefined {
  const v = metadata.get('x-error-code')[0];
  const s = typeof v === 'string' ? v : v?.toString('utf8');
  return s ? s : undefined;
}

function statusDetails(metadata: Metadata): Status | undefined {
  const v = metadata.get('grpc-status-details-bin')[0];
  if (!v) return undefined;
  try {
    return Status.decode(typeof v === 'string' ? Buffer.from(v, 'base64') : v);
  } catch {
    return undefined;
  }
}

function errorInfoReason(details: Status | undefined): string | undefined {
  for (const any of details?.details ?? []) {
    if (any.typeUrl !== ERROR_INFO_TYPE_URL) continue;
    try {
      const reason = ErrorInfo.decode(any.value).reason;
      if (reason) return reason;
    } catch {
      // a malformed detail: fall through to the status name
    }
  }
  return undefined;
}

function grpcStatusName(code: number): string {
  const name = (status as unknown as Record<number, string | undefined>)[code];
  return name ? name.toLowerCase() : 'unknown';
}

export function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

export function redact(s: string, ...secrets: (string | undefined)[]): string {
  let out = s;
  for (const secret of secrets) if (secret) out = out.split(secret).join('[redacted]');
  return out;
}
