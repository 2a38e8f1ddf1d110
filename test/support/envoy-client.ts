/**
 * An ext_authz client built at run time with @grpc/proto-loader from proto/,
 * independent of the generated code, as Envoy would be: it sends CheckRequests as
 * plain objects and reads CheckResponses field by field.
 */
import {
  credentials,
  loadPackageDefinition,
  type ChannelCredentials,
  type Client,
  type GrpcObject,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { join } from 'node:path';

const PROTO_ROOT = join(__dirname, '..', '..', 'proto');

const definition = loadSync('envoy/service/auth/v3/external_auth.proto', {
  includeDirs: [PROTO_ROOT],
  keepCase: true,
  longs: String,
  enums: Number,
  defaults: false,
  oneofs: true,
});
const pkg = loadPackageDefinition(definition) as unknown as { envoy: { service: { auth: { v3: GrpcObject } } } };
const AuthorizationCtor = pkg.envoy.service.auth.v3.Authorization as unknown as new (
  addr: string,
  creds: ReturnType<typeof credentials.createInsecure>,
) => Client;

export interface WireHeaderOption {
  header: { key: string; value?: string; raw_value?: Buffer };
  append?: { value?: boolean };
  append_action?: number;
}

/** A CheckResponse as proto-loader decodes it (snake_case, defaults omitted). */
export interface WireCheckResponse {
  status?: { code?: number; message?: string; details?: { type_url: string; value: Buffer }[] };
  http_response?: 'denied_response' | 'ok_response' | 'error_response';
  denied_response?: { status?: { code?: number }; headers?: WireHeaderOption[]; body?: string };
  ok_response?: {
    headers?: WireHeaderOption[];
    headers_to_remove?: string[];
    response_headers_to_add?: WireHeaderOption[];
  };
  /** google.protobuf types come from protobufjs's built-ins, which keep camelCase. */
  dynamic_metadata?: { fields?: Record<string, { stringValue?: string; kind?: string }> };
}

export interface CheckOptions {
  headers?: Record<string, string>;
  /** Raw headers: sent as header_map (raw_value) instead of headers. */
  rawHeaders?: [string, string][];
  method?: string;
  path?: string;
  host?: string;
  contextExtensions?: Record<string, string>;
}

export class EnvoyClient {
  private readonly client: Client;
  /** `creds`: the channel's credentials, plaintext by default (TLS tests pass their own). */
  constructor(port: number, creds: ChannelCredentials = credentials.createInsecure()) {
    this.client = new AuthorizationCtor(`127.0.0.1:${port}`, creds);
  }

  /** Sends a CheckRequest shaped as Envoy sends it. */
  check(o: CheckOptions = {}): Promise<WireCheckResponse> {
    const method = o.method ?? 'GET';
    const path = o.path ?? '/v1/things';
    const host = o.host ?? 'api.example.com';
    const http: Record<string, unknown> = { id: '123', method, path, host, scheme: 'https', protocol: 'HTTP/1.1' };
    if (o.rawHeaders) {
      http.header_map = { headers: o.rawHeaders.map(([key, v]) => ({ key, raw_value: Buffer.from(v, 'latin1') })) };
    } else {
      http.headers = { ':method': method, ':path': path, ':authority': host, ...o.headers };
    }
    const request = {
      attributes: {
        source: { address: { socket_address: { address: '10.0.0.1', port_value: 44321 } } },
        request: { time: { seconds: 1, nanos: 0 }, http },
        context_extensions: o.contextExtensions ?? {},
      },
    };
    return this.raw(request);
  }

  raw(request: unknown): Promise<WireCheckResponse> {
    return new Promise((resolve, reject) => {
      (this.client as unknown as Record<string, (...args: unknown[]) => unknown>).Check!.call(
        this.client,
        request,
        { deadline: Date.now() + 10000 },
        (e: ServiceError | null, r: WireCheckResponse) => (e ? reject(e) : resolve(r)),
      );
    });
  }

  close(): void {
    this.client.close();
  }
}

/** Header options as name → {value, append} for easy assertions. */
export function headerMap(opts: WireHeaderOption[] | undefined): Record<string, { value: string; append: boolean | undefined }> {
  const out: Record<string, { value: string; append: boolean | undefined }> = {};
  for (const o of opts ?? []) out[o.header.key] = { value: o.header.value ?? '', append: o.append ? (o.append.value ?? false) : undefined };
  return out;
}

/** Struct fields of dynamic_metadata as a plain string map. */
export function metadataOf(r: WireCheckResponse): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.dynamic_metadata?.fields ?? {})) out[k] = v.stringValue ?? '';
  return out;
}
