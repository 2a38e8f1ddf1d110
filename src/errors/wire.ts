/**
 * Errors on the wire: the one place where a DomainError becomes a gRPC status (through
 * ERROR_TABLE), a google.rpc.Status with ErrorInfo (and BadRequest for invalid
 * arguments) in the `grpc-status-details-bin` trailer, and an `x-error-code` trailer.
 * Anything that is not a DomainError becomes `internal` with no detail.
 */
import { Metadata, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { ERROR_TABLE, type ErrorCode } from './codes';
import { DomainError, InvalidArgumentError } from './domain';
import { Status } from '../gen/google/rpc/status';
import { BadRequest, ErrorInfo } from '../gen/google/rpc/error_details';
import type { Any } from '../gen/google/protobuf/any';

/** ErrorInfo.domain of every keyward error (KeyAdmin and Check alike). */
export const ERROR_DOMAIN = 'keyward';
export const ERROR_CODE_TRAILER = 'x-error-code';
export const STATUS_DETAILS_TRAILER = 'grpc-status-details-bin';

function any(typeName: string, value: Uint8Array): Any {
  return { typeUrl: `type.googleapis.com/${typeName}`, value: Buffer.from(value) };
}

/** What may be said on the wire about a failure: its code, safe message and details. */
export interface WireStatus {
  code: ErrorCode;
  message: string;
  metadata: Record<string, string>;
  violations: { field: string; description: string; reason: string }[];
}

/** Reduces any thrown value to what may be said on the wire. */
export function toWireStatus(e: unknown): WireStatus {
  if (e instanceof InvalidArgumentError) {
    return {
      code: e.code,
      message: e.message,
      metadata: e.metadata,
      violations: [{ field: e.field, description: e.description, reason: e.reason }],
    };
  }
  if (e instanceof DomainError) return { code: e.code, message: e.message, metadata: e.metadata, violations: [] };
  return { code: 'internal', message: ERROR_TABLE.internal.message, metadata: {}, violations: [] };
}

/** google.rpc.Status for a wire error: ErrorInfo first, then BadRequest if any. */
export function richStatus(wire: WireStatus): Status {
  const details: Any[] = [
    any('google.rpc.ErrorInfo', ErrorInfo.encode({ reason: wire.code, domain: ERROR_DOMAIN, metadata: wire.metadata }).finish()),
  ];
  if (wire.violations.length > 0) {
    details.push(any('google.rpc.BadRequest', BadRequest.encode({ fieldViolations: wire.violations }).finish()));
  }
  return { code: ERROR_TABLE[wire.code].grpc, message: wire.message, details };
}

/** The error a grpc-js handler returns: status, message and both trailers. */
export function toServiceError(e: unknown): Partial<StatusObject> & ServiceError {
  const wire = toWireStatus(e);
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_TRAILER, wire.code);
  metadata.set(STATUS_DETAILS_TRAILER, Buffer.from(Status.encode(richStatus(wire)).finish()));
  const err = Object.assign(new Error(wire.message), { code: ERROR_TABLE[wire.code].grpc, details: wire.message, metadata });
  return err;
}
