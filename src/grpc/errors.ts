/**
 * Maps errors to gRPC: the one place where a DomainError becomes a status, a
 * google.rpc.Status with ErrorInfo (and BadRequest for invalid arguments) in the
 * `grpc-status-details-bin` trailer, and an `x-error-code` trailer. Anything that is
 * not a DomainError becomes `internal` with no detail.
 */
import { Metadata, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { ERROR_TABLE, type ErrorCode } from '../errors/codes';
import { DomainError, InvalidArgumentError } from '../errors/domain';
import { Status } from '../gen/google/rpc/status';
import { BadRequest, ErrorInfo } from '../gen/google/rpc/error_details';
import type { Any } from '../gen/google/protobuf/any';

export const ERROR_DOMAIN = 'keyward';
export const ERROR_CODE_TRAILER = 'x-error-code';
export const STATUS_DETAILS_TRAILER = 'grpc-status-details-bin';

function any(typeName: string, value: Uint8Array): Any {
  return { typeUrl: `type.googleapis.com/${typeName}`, value: Buffer.from(value) };
}

export interface WireError {
  code: ErrorCode;
  message: string;
  metadata: Record<string, string>;
  violations: { field: string; description: string; reason: string }[];
}

/** Reduces any thrown value to what may be said on the wire. */
export function toWireError(e: unknown): WireError {
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
export function richStatus(w: WireError): Status {
  const details: Any[] = [
    any('google.rpc.ErrorInfo', ErrorInfo.encode({ reason: w.code, domain: ERROR_DOMAIN, metadata: w.metadata }).finish()),
  ];
  if (w.violations.length > 0) {
    details.push(any('google.rpc.BadRequest', BadRequest.encode({ fieldViolations: w.violations }).finish()));
  }
  return { code: ERROR_TABLE[w.code].grpc, message: w.message, details };
}

export function toServiceError(e: unknown): Partial<StatusObject> & ServiceError {
  const w = toWireError(e);
  const metadata = new Metadata();
  metadata.set(ERROR_CODE_TRAILER, w.code);
  metadata.set(STATUS_DETAILS_TRAILER, Buffer.from(Status.encode(richStatus(w)).finish()));
  const err = Object.assign(new Error(w.message), { code: ERROR_TABLE[w.code].grpc, details: w.message, metadata });
  return err as Partial<StatusObject> & ServiceError;
}
