/**
 * Envoy access-log entries as Envoy's gRPC access logger sends them to keyward
 * (StreamAccessLogs): keyward's ext_authz dynamic metadata for a key, the response
 * code and duration, and the upstream's usage headers (keyward's default names).
 */
import { randomUUID } from 'node:crypto';
import { RequestMethod } from '../../src/gen/envoy/config/core/v3/base';
import { HTTPAccessLogEntry, HTTPAccessLogEntry_HTTPVersion } from '../../src/gen/envoy/data/accesslog/v3/accesslog';
import { EXT_AUTHZ_METADATA_NAMESPACE } from '../../src/usage/access-log';

export interface EntryOptions {
  keyId: string;
  orgId: string;
  start: Date;
  method: RequestMethod;
  path: string;
  code: number;
  ms: number;
  /** Sent as x-usage-tokens / x-usage-cost-usd on a 200 only. */
  tokens: number;
  costUsd: number;
}

export function accessLogEntry(o: EntryOptions): HTTPAccessLogEntry {
  const duration = { seconds: Math.floor(o.ms / 1000), nanos: (o.ms % 1000) * 1_000_000 };
  return HTTPAccessLogEntry.fromPartial({
    commonProperties: {
      startTime: o.start,
      duration,
      timeToLastDownstreamTxByte: duration,
      upstreamCluster: 'upstream_api',
      routeName: 'v1',
      metadata: { filterMetadata: { [EXT_AUTHZ_METADATA_NAMESPACE]: { key_id: o.keyId, org_id: o.orgId, environment: 'live' } } },
    },
    protocolVersion: HTTPAccessLogEntry_HTTPVersion.HTTP11,
    request: {
      requestMethod: o.method,
      scheme: 'https',
      authority: 'api.example.com',
      path: o.path,
      userAgent: 'bench/1.0',
      requestId: randomUUID(),
      requestHeaders: {},
    },
    response: {
      responseCode: o.code,
      responseCodeDetails: o.code === 200 ? 'via_upstream' : 'upstream_reset',
      responseHeaders: o.code === 200 ? { 'x-usage-tokens': String(o.tokens), 'x-usage-cost-usd': o.costUsd.toFixed(6) } : {},
    },
  });
}
