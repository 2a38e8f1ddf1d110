/**
 * OpenTelemetry spans, received on real OTLP receivers started here (OTLP/HTTP
 * protobuf on node:http, OTLP/gRPC on grpc-js): a Check's span continues the request's
 * `traceparent` and carries the decision code, key id, organization id and route; an
 * admin RPC's span is named after the RPC; no secret is in any exported byte. And
 * tracing is off, loading nothing, without OTEL_* endpoints.
 */
import { execFileSync } from 'node:child_process';
import { createServer, type Server as HttpServer } from 'node:http';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Server as GrpcServer, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { parseRouteRules } from '../src/authz/routes';
import { tracingConfig, type TracingConfig } from '../src/observability/tracing';
import { startHarness, TEST_ADMIN_TOKEN, type Harness } from './support/harness';
import { EnvoyClient } from './support/envoy-client';

/** The subset of opentelemetry/proto/collector/trace/v1 read here (unknown fields are skipped). */
const OTLP = protobuf
  .parse(
    `
syntax = "proto3";
package otlp;
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeSpans { repeated Span spans = 2; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; bytes parent_span_id = 4; string name = 5; int32 kind = 6;
  repeated KeyValue attributes = 9; Status status = 15;
}
message Status { int32 code = 3; }
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue { oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; } }
`,
  )
  .root.lookupType('otlp.ExportTraceServiceRequest');

interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  status: number;
  attributes: Record<string, string | number | boolean>;
}

type PlainKeyValue = { key: string; value?: { stringValue?: string; boolValue?: boolean; intValue?: number; doubleValue?: number } };
type PlainSpan = {
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  name: string;
  status?: { code?: number };
  attributes?: PlainKeyValue[];
};
type PlainRequest = { resourceSpans?: { resource?: { attributes?: PlainKeyValue[] }; scopeSpans?: { spans?: PlainSpan[] }[] }[] };

function attributesOf(list: PlainKeyValue[] = []): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list) out[key] = value?.stringValue ?? value?.intValue ?? value?.boolValue ?? value?.doubleValue ?? '';
  return out;
}

function decodeSpans(body: Buffer): ReceivedSpan[] {
  const req = OTLP.toObject(OTLP.decode(body), { bytes: String, longs: Number }) as PlainRequest;
  const hex = (b64 = '') => Buffer.from(b64, 'base64').toString('hex');
  return (req.resourceSpans ?? []).flatMap((rs) =>
    (rs.scopeSpans ?? []).flatMap((ss) =>
      (ss.spans ?? []).map((s) => ({
        service: String(attributesOf(rs.resource?.attributes)['service.name']),
        traceId: hex(s.traceId),
        spanId: hex(s.spanId),
        parentSpanId: hex(s.parentSpanId),
        name: s.name,
        status: s.status?.code ?? 0,
        attributes: attributesOf(s.attributes),
      })),
    ),
  );
}

/** What a receiver got: every request body, raw. */
interface Receiver {
  bodies: Buffer[];
  spans(): ReceivedSpan[];
  close(): Promise<void>;
}

async function httpReceiver(): Promise<Receiver & { endpoint: string }> {
  const bodies: Buffer[] = [];
  const server: HttpServer = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/v1/traces' && req.headers['content-type'] === 'application/x-protobuf') {
        bodies.push(Buffer.concat(chunks));
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      } else res.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    spans: () => bodies.flatMap(decodeSpans),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function grpcReceiver(): Promise<Receiver & { endpoint: string }> {
  const bodies: Buffer[] = [];
  const server = new GrpcServer();
  const raw = (b: Buffer) => b;
  server.addService(
    {
      Export: {
        path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
        requestStream: false,
        responseStream: false,
        requestDeserialize: raw,
        requestSerialize: raw,
        responseSerialize: raw,
        responseDeserialize: raw,
      },
    },
    {
      Export: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
        bodies.push(call.request);
        callback(null, Buffer.alloc(0));
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bodies,
    spans: () => bodies.flatMap(decodeSpans),
    close: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
}

const ROUTES = parseRouteRules(
  ['rules:', '  - name: things-read', '    path_prefix: /v1/things', '    required_scopes: [things:read]'].join('\n'),
  'inline',
);
const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

describe.each([
  ['http/protobuf', httpReceiver],
  ['grpc', grpcReceiver],
] as const)('spans over OTLP %s', (protocol, startReceiver) => {
  let receiver: Receiver & { endpoint: string };
  let h: Harness;
  let envoy: EnvoyClient;

  beforeAll(async () => {
    receiver = await startReceiver();
    const tracing = tracingConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
      OTEL_SERVICE_NAME: 'keyward-test',
    });
    h = await startHarness('sqlite', { routes: ROUTES, tracing });
    envoy = new EnvoyClient(h.app.authzPort);
  });
  afterAll(async () => {
    envoy.close();
    await h.stop();
    await receiver.close();
  });

  it('a Check continues its traceparent, with code, key id, org id and route, and no secret is exported', async () => {
    const org = await h.root.createOrganization({ name: 'Traced', rateLimitPerMinute: 0 });
    const key = await h.root.createKey({ organizationId: org.id, name: 'k', scopes: ['things:read'] });
    const allowed = await envoy.check({
      headers: { authorization: `Bearer ${key.secret}`, traceparent: `00-${TRACE_ID}-${PARENT_ID}-01` },
    });
    expect(allowed.http_response).toBe('ok_response');
    const denied = await envoy.check({ headers: { 'x-api-key': 'kw_live_notakeyatall' } });
    expect(denied.http_response).toBe('denied_response');
    await h.app.tracing!.forceFlush();

    const spans = receiver.spans();
    const checks = spans.filter((s) => s.name === 'envoy.service.auth.v3.Authorization/Check');
    expect(checks).toHaveLength(2);
    const [ok, deny] = checks;
    expect(ok).toMatchObject({
      service: 'keyward-test',
      traceId: TRACE_ID,
      parentSpanId: PARENT_ID,
      status: 0,
      attributes: {
        'keyward.decision.code': 'ok',
        'keyward.key.id': key.key!.id,
        'keyward.organization.id': org.id,
        'keyward.route': 'things-read',
      },
    });
    expect(ok!.spanId).toMatch(/^[0-9a-f]{16}$/);
    expect(ok!.spanId).not.toBe(PARENT_ID);
    // Without a traceparent: a new trace, no parent; a denial is not a span error.
    expect(deny!.traceId).not.toBe(TRACE_ID);
    expect(deny!.parentSpanId).toBe('');
    expect(deny!.attributes['keyward.decision.code']).toBe('invalid_api_key');
    expect(deny!.attributes['keyward.key.id']).toBeUndefined();

    const exported = Buffer.concat(receiver.bodies).toString('latin1');
    for (const secret of [key.secret, 'kw_live_notakeyatall', TEST_ADMIN_TOKEN, h.config.hashSecret.toString('latin1')]) {
      expect(exported.includes(secret)).toBe(false);
    }
  });

  it('an admin RPC is a span named after it, with status, caller kind and organization id', async () => {
    const org = await h.root.createOrganization({ name: 'Admin traced', rateLimitPerMinute: 0 });
    await h.root.getOrganization({ id: org.id });
    await expect(h.client('wrong-token').listOrganizations({})).rejects.toThrow();
    await h.app.tracing!.forceFlush();

    const spans = receiver.spans();
    const created = spans.filter((s) => s.name === 'keyward.admin.v1.KeyAdmin/CreateOrganization').at(-1);
    expect(created?.attributes).toMatchObject({
      'rpc.system': 'grpc',
      'rpc.method': 'CreateOrganization',
      'rpc.grpc.status_code': 0,
      'keyward.code': 'ok',
      'keyward.caller.kind': 'root',
    });
    // The organization a root call acts on (CreateKey's organization_id, from the first test).
    const keyCreated = spans.find((s) => s.name === 'keyward.admin.v1.KeyAdmin/CreateKey');
    expect(keyCreated?.attributes['keyward.organization.id']).toMatch(/\S/);
    const refused = spans.find((s) => s.name === 'keyward.admin.v1.KeyAdmin/ListOrganizations');
    expect(refused?.attributes).toMatchObject({ 'rpc.grpc.status_code': 16, 'keyward.caller.kind': 'unauthenticated' });
    expect(refused?.attributes['keyward.organization.id']).toBeUndefined();
    expect(Buffer.concat(receiver.bodies).toString('latin1')).not.toContain('wrong-token');
  });
});

describe('tracing configuration from OTEL_*', () => {
  it('is off without an endpoint, or with OTEL_SDK_DISABLED=true', () => {
    expect(tracingConfig({})).toBeUndefined();
    expect(tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' })).toBeUndefined();
  });

  it('appends /v1/traces to the base endpoint for http/protobuf only; the traces endpoint is used as is', () => {
    expect(tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' })).toEqual<TracingConfig>({
      protocol: 'http/protobuf',
      url: 'http://c:4318/v1/traces',
      serviceName: 'keyward',
    });
    expect(tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })?.url).toBe('http://c:4317');
    expect(
      tracingConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:9999/custom',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
      }),
    ).toEqual<TracingConfig>({ protocol: 'http/protobuf', url: 'http://t:9999/custom', serviceName: 'keyward' });
  });

  it('refuses another protocol, naming the variable', () => {
    expect(() => tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' })).toThrow(
      /^OTEL_EXPORTER_OTLP_PROTOCOL: must be http\/protobuf or grpc/,
    );
  });

  it('when off, the app has no tracing', async () => {
    const h = await startHarness('sqlite');
    try {
      expect(h.app.tracing).toBeUndefined();
    } finally {
      await h.stop();
    }
  });

  it('loading the app and its configuration loads no OpenTelemetry SDK or exporter', () => {
    const script = [
      "require('./src/app'); require('./src/config'); require('./src/grpc/check-observer');",
      'process.stdout.write(JSON.stringify(Object.keys(require.cache).filter((m) => /@opentelemetry[\\\\/](sdk-trace|exporter-|resources|core)/.test(m))));',
    ].join('\n');
    const out = execFileSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: join(__dirname, '..'), encoding: 'utf8' });
    expect(JSON.parse(out)).toEqual([]);
  });
});
