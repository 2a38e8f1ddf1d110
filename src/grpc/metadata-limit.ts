/**
 * The limit on a call's gRPC metadata (its HTTP/2 request headers), enforced by every
 * keyward RPC: Check, StreamAccessLogs and each KeyAdmin method.
 *
 * grpc-js has no metadata limit of its own (it ignores `grpc.max_metadata_size`);
 * Node's HTTP/2 layer refuses only what it cannot hold (more than 128 header fields,
 * a single field beyond about 64 KiB). So keyward checks the size itself, counted as
 * HTTP/2 does (RFC 7541 §4.1): for each entry, name + value + 32 bytes, binary
 * (`-bin`) values in their base64 length. The reserved headers grpc-js consumes
 * (pseudo-headers, content-type, te, grpc-timeout, grpc-encoding,
 * grpc-accept-encoding) are not counted.
 *
 * A call above the limit fails with RESOURCE_EXHAUSTED, code `metadata_too_large`,
 * ErrorInfo metadata `limit_bytes`, before any other work (for KeyAdmin: before
 * authentication). Envoy's own calls carry well under 1 KiB.
 */
import type { Metadata } from '@grpc/grpc-js';
import { DomainError } from '../errors/domain';

/** 16 KiB, gRPC C-core's hard default (grpc.absolute_max_metadata_size). */
export const MAX_METADATA_BYTES = 16 * 1024;

/** The metadata's size as HTTP/2 counts a header list. */
export function metadataSize(md: Metadata): number {
  let n = 0;
  const all = md.toJSON();
  for (const name of Object.keys(all)) {
    for (const v of all[name]!) n += name.length + 32 + (typeof v === 'string' ? v.length : Math.ceil(v.length / 3) * 4);
  }
  return n;
}

/** Throws `metadata_too_large` when the call's metadata exceeds MAX_METADATA_BYTES. */
export function checkMetadataSize(md: Metadata): void {
  if (metadataSize(md) > MAX_METADATA_BYTES) {
    throw new DomainError('metadata_too_large', undefined, { limit_bytes: String(MAX_METADATA_BYTES) });
  }
}
