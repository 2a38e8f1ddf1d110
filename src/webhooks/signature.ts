/**
 * The `keyward-signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + body)>`.
 * Receivers recompute v1 over the raw body and reject a `t` too far from their clock
 * (docs/events-webhooks.md shows how).
 */
import { createHmac, randomBytes } from 'node:crypto';

export const SIGNATURE_HEADER = 'keyward-signature';

export function signatureHeader(secret: string, body: string, unixSeconds: number): string {
  const v1 = createHmac('sha256', secret).update(`${unixSeconds}.${body}`).digest('hex');
  return `t=${unixSeconds},v1=${v1}`;
}

/** A new signing secret: `whsec_` + 32 random bytes, base64url (sealed at rest: src/keys/secret-box.ts). */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}
