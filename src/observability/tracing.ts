/**
 * OpenTelemetry traces, when the standard OTEL_* variables ask for them: one span per
 * Check (continuing the W3C `traceparent` of the request's headers) and one per
 * KeyAdmin RPC, batched and exported over OTLP (http/protobuf or grpc).
 *
 * Contract:
 * - Off unless OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT is set
 *   (and OTEL_SDK_DISABLED is not `true`). When off, nothing of OpenTelemetry is loaded:
 *   the SDK and the exporter are imported dynamically by startTracing, and the callers
 *   (check-observer.ts, grpc/admin/server.ts) test one `undefined`.
 * - Spans carry ids, codes and the route rule's name, never a credential or a header
 *   value: only the `traceparent`/`tracestate` headers are read.
 * - The spans are not made current (no context manager): nothing inside a Check or an
 *   admin call starts child spans.
 */
import type { Span, Tracer } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { HeaderList } from '../authz/credentials';
import { ConfigError, type Env } from '../config/read';
import { describeError } from '../util/logger';

export type OtlpProtocol = 'http/protobuf' | 'grpc';

/** What OTEL_* asks for (see tracingConfig). */
export interface TracingConfig {
  protocol: OtlpProtocol;
  /** The traces URL: …/v1/traces for http/protobuf; the collector's address for grpc. */
  url: string;
  /** OTEL_SERVICE_NAME, default `keyward`. */
  serviceName: string;
}

/**
 * The tracing settings from the standard OTEL_* variables, or undefined when traces are
 * off. OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as is; OTEL_EXPORTER_OTLP_ENDPOINT gets
 * `/v1/traces` appended under http/protobuf. The protocol is
 * OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL, else
 * http/protobuf; any other value (http/json) is a ConfigError. Other OTEL_EXPORTER_OTLP_*
 * variables (headers, timeout, compression) are read by the exporter itself.
 */
export function tracingConfig(env: Env): TracingConfig | undefined {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return undefined;
  const tracesEndpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || undefined;
  const endpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || undefined;
  if (tracesEndpoint === undefined && endpoint === undefined) return undefined;
  const protocolVariable = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL?.trim()
    ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'
    : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = env[protocolVariable]?.trim() || 'http/protobuf';
  if (protocol !== 'http/protobuf' && protocol !== 'grpc')
    throw new ConfigError(protocolVariable, `must be http/protobuf or grpc (got ${JSON.stringify(protocol)})`);
  const url = tracesEndpoint ?? (protocol === 'grpc' ? endpoint! : `${endpoint!.replace(/\/+$/, '')}/v1/traces`);
  return { protocol, url, serviceName: env.OTEL_SERVICE_NAME?.trim() || 'keyward' };
}

/** One started span; exactly one of end() or fail() is called. */
export interface SpanHandle {
  /** Sets the attributes (undefined ones skipped) and ends the span. */
  end(attributes: Readonly<Record<string, string | number | undefined>>, error?: boolean): void;
}

/** Running tracing: span factories for the edges, and the exporter's lifetime. */
export interface Tracing {
  /** A Check's server span, child of the request's `traceparent` when valid. */
  startCheck(headers: HeaderList): SpanHandle;
  /** A KeyAdmin RPC's server span, named `keyward.admin.v1.KeyAdmin/<method>`. */
  startAdmin(method: string): SpanHandle;
  /** Exports every ended span now (tests). */
  forceFlush(): Promise<void>;
  /** Flushes and stops the exporter (app close). */
  shutdown(): Promise<void>;
}

export const CHECK_SPAN_NAME = 'envoy.service.auth.v3.Authorization/Check';
export const ADMIN_SPAN_PREFIX = 'keyward.admin.v1.KeyAdmin/';

/** Loads the SDK and the configured exporter (dynamic imports) and starts a BatchSpanProcessor. */
export async function startTracing(config: TracingConfig, logger: Logger): Promise<Tracing> {
  const api = await import('@opentelemetry/api');
  const { W3CTraceContextPropagator } = await import('@opentelemetry/core');
  const { resourceFromAttributes } = await import('@opentelemetry/resources');
  const { BasicTracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-base');
  const exporter =
    config.protocol === 'grpc'
      ? new (await import('@opentelemetry/exporter-trace-otlp-grpc')).OTLPTraceExporter({ url: config.url })
      : new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter({ url: config.url });
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': config.serviceName }),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  const tracer: Tracer = provider.getTracer('keyward');
  const propagator = new W3CTraceContextPropagator();
  const getter = {
    keys: (carrier: HeaderList) => carrier.map(([k]) => k),
    get: (carrier: HeaderList, key: string) => {
      for (const [k, v] of carrier) if (k === key) return v;
      return undefined;
    },
  };
  const handle = (span: Span): SpanHandle => ({
    end(attributes, error) {
      for (const [k, v] of Object.entries(attributes)) if (v !== undefined) span.setAttribute(k, v);
      if (error) span.setStatus({ code: api.SpanStatusCode.ERROR });
      span.end();
    },
  });
  logger.info({ protocol: config.protocol, serviceName: config.serviceName }, 'tracing: exporting spans over OTLP');
  return {
    startCheck(headers) {
      const parent = propagator.extract(api.ROOT_CONTEXT, headers, getter);
      const attributes = { 'rpc.system': 'grpc', 'rpc.service': 'envoy.service.auth.v3.Authorization', 'rpc.method': 'Check' };
      return handle(tracer.startSpan(CHECK_SPAN_NAME, { kind: api.SpanKind.SERVER, attributes }, parent));
    },
    startAdmin(method) {
      const attributes = { 'rpc.system': 'grpc', 'rpc.service': 'keyward.admin.v1.KeyAdmin', 'rpc.method': method };
      return handle(tracer.startSpan(`${ADMIN_SPAN_PREFIX}${method}`, { kind: api.SpanKind.SERVER, attributes }, api.ROOT_CONTEXT));
    },
    forceFlush: () => provider.forceFlush(),
    async shutdown() {
      await provider.shutdown().catch((e: unknown) => logger.warn({ err: describeError(e) }, 'tracing: final export failed'));
    },
  };
}
