/**
 * Envoy's side of the access-log stream for tests: a client built at run time with
 * @grpc/proto-loader from proto/ (independent of the generated code, as Envoy would be),
 * entries in Envoy's wire form, and a server running accessLogImplementation on port 0.
 */
import {
  credentials,
  loadPackageDefinition,
  Server,
  ServerCredentials,
  type Client,
  type ClientWritableStream,
  type GrpcObject,
  type ServiceError,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { join } from 'node:path';
import { SafeAccessLogService, type accessLogImplementation } from '../../src/grpc/accesslog-server';

export const PROTO_ROOT = join(__dirname, '..', '..', 'proto');
export const definition = loadSync('envoy/service/accesslog/v3/als.proto', {
  includeDirs: [PROTO_ROOT],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
});
/** The loaded als.proto package (its message types serialize by hand-built objects). */
export const alsPackage = loadPackageDefinition(definition) as unknown as { envoy: { service: { accesslog: { v3: GrpcObject } } } };
export const AccessLogServiceCtor = alsPackage.envoy.service.accesslog.v3.AccessLogService as unknown as new (
  addr: string,
  creds: ReturnType<typeof credentials.createInsecure>,
) => Client;

/** google.protobuf.Struct on the wire (protobufjs built-ins keep camelCase). */
export function struct(fields: Record<string, string | number>) {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) out[k] = typeof v === 'string' ? { stringValue: v } : { numberValue: v };
  return { fields: out };
}
export const ts = (ms: number) => ({ seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 });

/** An HTTP entry as Envoy sends it (snake_case, plain objects). */
export function wireEntry(o: {
  md?: Record<string, Record<string, string | number>>;
  method?: string;
  path?: string;
  originalPath?: string;
  requestHeaders?: Record<string, string>;
  requestId?: string;
  code?: number;
  duration?: { seconds: string; nanos: number };
  lastByte?: { seconds: string; nanos: number };
  responseHeaders?: Record<string, string>;
  start?: number;
}) {
  const filter_metadata: Record<string, unknown> = {};
  for (const [ns, f] of Object.entries(o.md ?? {})) filter_metadata[ns] = struct(f);
  return {
    common_properties: {
      ...(o.start !== undefined && { start_time: ts(o.start) }),
      ...(o.duration && { duration: o.duration }),
      ...(o.lastByte && { time_to_last_downstream_tx_byte: o.lastByte }),
      metadata: { filter_metadata },
      upstream_cluster: 'llm',
    },
    protocol_version: 'HTTP11',
    request: {
      request_method: o.method ?? 'METHOD_UNSPECIFIED',
      path: o.path ?? '',
      original_path: o.originalPath ?? '',
      request_id: o.requestId ?? '',
      request_headers: o.requestHeaders ?? {},
      authority: 'api.example.com',
    },
    response: {
      ...(o.code !== undefined && { response_code: { value: o.code } }),
      response_headers: o.responseHeaders ?? {},
    },
  };
}

/** Streams messages and resolves with the server's reply once the stream is ended. */
export function stream(client: Client, messages: unknown[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const call = (client as unknown as Record<string, (...args: unknown[]) => unknown>).StreamAccessLogs!.call(
      client,
      { deadline: Date.now() + 15000 },
      (e: ServiceError | null, r: unknown) => (e ? reject(e) : resolve(r)),
    ) as ClientWritableStream<unknown>;
    for (const m of messages) call.write(m);
    call.end();
  });
}

export async function startServer(impl: ReturnType<typeof accessLogImplementation>): Promise<{ server: Server; port: number }> {
  const server = new Server();
  server.addService(SafeAccessLogService, impl);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return { server, port };
}
