/**
 * The domain error hierarchy. Services throw these; ./wire.ts maps them to the wire
 * through ERROR_TABLE (./codes.ts). Messages are safe to show to the
 * caller: they never contain a secret, a hash or a token.
 */
import { ERROR_TABLE, type ErrorCode } from './codes';

export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string = ERROR_TABLE[code].message,
    /** Extra machine-readable context, carried in ErrorInfo.metadata. */
    readonly metadata: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

/** A bad request field: INVALID_ARGUMENT, naming the field. */
export class InvalidArgumentError extends DomainError {
  constructor(
    readonly field: string,
    readonly description: string,
    readonly reason: string = 'invalid',
  ) {
    super('invalid_argument', `${field}: ${description}`, { field, violation: reason });
    this.name = 'InvalidArgumentError';
  }
}

export class PermissionDeniedError extends DomainError {
  constructor(message?: string) {
    super('permission_denied', message);
  }
}
export class UnauthenticatedError extends DomainError {
  constructor(code: 'missing_credentials' | 'invalid_credentials') {
    super(code);
  }
}

/** KeyAdmin refuses a peer that failed to authenticate too often (brute force); metadata.retry_after_seconds. */
export class TooManyAuthFailuresError extends DomainError {
  constructor(retryAfterSeconds: number) {
    super('too_many_auth_failures', undefined, { retry_after_seconds: String(retryAfterSeconds) });
  }
}

/** The store (database) failed or is unreachable. Infrastructure, not a denial. */
export class StoreUnavailableError extends DomainError {
  constructor(cause?: unknown) {
    super('store_unavailable');
    this.cause = cause;
  }
}
