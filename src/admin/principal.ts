/**
 * Who is calling KeyAdmin. The administrator token acts on every organization; an
 * API key with the `admin` scope acts on its own organization only.
 */
import type { RetrySafeCall } from './requests';

export type Principal = { kind: 'root'; actor: 'admin' } | { kind: 'org'; actor: string; organizationId: string; keyId: string };

/** The caller of one RPC: identity plus the peer address for the audit log. */
export interface CallContext {
  principal: Principal;
  peer: string;
  /** A retry-safe call's request_id (./requests.ts): its first AdminContext.tx is remembered. */
  retry?: RetrySafeCall;
}

export const ROOT: Principal = { kind: 'root', actor: 'admin' };

export function orgPrincipal(organizationId: string, keyId: string): Principal {
  return { kind: 'org', actor: `key:${keyId}`, organizationId, keyId };
}
