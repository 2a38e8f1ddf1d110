/**
 * The model of the Check codec's decoder: a decoded CheckRequest (the generated
 * decoder) as the attributes a decision reads. decodeCheckAttributes must agree with
 * attributesOf(CheckRequest.decode(bytes)) (test/property.wire-codec.test.ts).
 */
import type { CheckRequest } from '../../src/gen/envoy/service/auth/v3/external_auth';
import { asciiLower, headersOfMap, type HeaderList } from '../../src/authz/credentials';
import type { RequestAttributes } from '../../src/grpc/check-codec';

/** The request's headers as [name, value] pairs, from header_map when Envoy sent it. */
export function headerList(req: CheckRequest): HeaderList {
  const http = req.attributes?.request?.http;
  if (!http) return [];
  const raw = http.headerMap?.headers;
  if (raw && raw.length > 0) {
    return raw.map((h) => [asciiLower(h.key), h.rawValue && h.rawValue.length > 0 ? h.rawValue.toString('latin1') : h.value] as const);
  }
  return headersOfMap(http.headers ?? {});
}

/** The decision's attributes of a decoded CheckRequest. */
export function attributesOf(req: CheckRequest): RequestAttributes {
  const http = req.attributes?.request?.http;
  return {
    method: http?.method ?? '',
    path: http?.path ?? '',
    host: http?.host ?? '',
    headers: headerList(req),
    contextExtensions: req.attributes?.contextExtensions ?? {},
    sourceAddress: req.attributes?.source?.address?.socketAddress?.address ?? '',
  };
}
