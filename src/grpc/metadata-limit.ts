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
  // grpc-js keeps the entries in a Map (`internalRepr`): read in place, with no copy or
  // closure per call; through toJSON() should a grpc-js version keep them otherwise.
  const repr = (md as unknown as { internalRepr?: unknown }).internalRepr;
  sized = 0;
  if (repr instanceof Map) (repr as Map<string, MetadataValue[]>).forEach(addEntry);
  else {
    const all = md.toJSON();
    for (const name of Object.keys(all)) addEntry(all[name]!, name);
  }
  return sized;
}

type MetadataValue = string | Buffer;
let sized = 0;
function addEntry(values: MetadataValue[], name: string): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    sized += name.length + 32 + (typeof v === 'string' ? v.length : Math.ceil(v.length / 3) * 4);
  }
}

/** Throws `metadata_too_large` when the call's metadata exceeds MAX_METADATA_BYTES. */
export function checkMetadataSize(md: Metadata): void {
  if (metadataSize(md) > MAX_METADATA_BYTES) {
    throw new DomainError('metadata_too_large', undefined, { limit_bytes: String(MAX_METADATA_BYTES) });
  }
}
