/**
 * Structured JSON logs (pino). Contract: no log line carries a full key, a key hash,
 * an admin token or the hash secret. Call sites log ids and codes only; the redact
 * list below is a second line of defence for fields that should never be logged.
 */
import pino, { type Logger } from 'pino';

export type { Logger };

export const REDACTED_FIELDS = [
  'secret',
  'key',
  'token',
  'authorization',
  'keyHash',
  'tokenHash',
  'hashSecret',
  'adminToken',
  '*.secret',
  '*.key',
  '*.token',
  '*.authorization',
  '*.keyHash',
  '*.tokenHash',
  '*.hashSecret',
  '*.adminToken',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'keyward' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_FIELDS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/**
 * An error as it may be logged: its class and driver code only. Database messages can
 * quote SQL parameters (key hashes), so messages are never logged.
 */
export function describeError(err: unknown): { type: string; code?: string } {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { type: err.constructor.name, code: typeof code === 'string' ? code : undefined };
  }
  return { type: typeof err };
}
