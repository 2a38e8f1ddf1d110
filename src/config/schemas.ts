/**
 * The value schemas the settings table (./settings.ts) uses. Each parses one
 * variable's text; the first issue's message is the problem named in the ConfigError.
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';

export type DatabaseConfig = { kind: 'sqlite'; path: string; url: string } | { kind: 'postgres'; url: string };

/** Reports `message` as the schema's issue; the caller returns z.NEVER. */
function fail(ctx: z.RefinementCtx, message: string): typeof z.NEVER {
  ctx.addIssue({ code: 'custom', message });
  return z.NEVER;
}

const LISTEN = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

function isHostPort(text: string): boolean {
  const match = LISTEN.exec(text);
  return match !== null && Number(match[2]) <= 65535;
}

/** host:port (a name, an IPv4 address or a bracketed IPv6 address). */
export const hostPort = z
  .string()
  .transform((text, ctx) => (isHostPort(text) ? text : fail(ctx, `expected host:port, got ${JSON.stringify(text)}`)));

/** host:port, or `off` (undefined). */
export const hostPortOrOff = z
  .string()
  .transform((text, ctx) =>
    text === 'off' ? undefined : isHostPort(text) ? text : fail(ctx, `expected host:port, got ${JSON.stringify(text)}`),
  );

export const bool = z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((s) => s === 'true' || s === '1' || s === 'yes');

/** An integer from min to max. */
export const intIn = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

/** One HTTP header name, lower-cased. */
export const headerName = z
  .string()
  .transform((s) => s.trim().toLowerCase())
  .refine((h) => HEADER_NAME.test(h), 'must be a header name');

/** A comma-separated list of header names, lower-cased, at least one. */
export const headerNames = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .filter((h) => h !== ''),
  )
  .refine((l) => l.length > 0 && l.every((h) => HEADER_NAME.test(h)), 'must be a comma-separated list of header names');

/** Decodes a secret given as hex or base64 (standard or url-safe); undefined if neither. */
function decodeSecret(text: string): Buffer | undefined {
  if (/^[0-9a-fA-F]+$/.test(text) && text.length % 2 === 0) return Buffer.from(text, 'hex');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) {
    const bytes = Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    return bytes.length > 0 ? bytes : undefined;
  }
  return undefined;
}

/** A keyed-hash secret: hex or base64 of at least 32 bytes. Errors never quote it. */
export const hashSecret = z.string().transform((text, ctx) => {
  const bytes = decodeSecret(text);
  if (!bytes) return fail(ctx, 'must be hex or base64');
  if (bytes.length < 32) return fail(ctx, `must decode to at least 32 bytes, got ${bytes.length}`);
  return bytes;
});

export const adminToken = z.string().refine((token) => token.length >= 16, 'must be at least 16 characters');

/** `sqlite:<path>` or `postgres(ql)://…`. Errors never quote the URL (it may hold a password). */
export const databaseUrl = z.string().transform((url, ctx): DatabaseConfig => {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length).replace(/^\/\/(?=\/)/, '');
    if (path === '') return fail(ctx, 'sqlite: needs a file path, e.g. sqlite:./data/keyward.db');
    if (path === ':memory:') return { kind: 'sqlite', path, url };
    return { kind: 'sqlite', path: resolve(path), url };
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    try {
      const parsed = new URL(url);
      if (!parsed.hostname && !parsed.searchParams.get('host')) throw new Error('no host');
    } catch {
      return fail(ctx, 'is not a valid postgres:// URL');
    }
    return { kind: 'postgres', url };
  }
  return fail(ctx, 'must start with sqlite: or postgres:// or postgresql://');
});

/** redis:// or rediss://. Errors never quote the URL (it may hold a password). */
export const redisUrl = z
  .string()
  .refine((url) => /^rediss?:\/\/[^\s]+$/.test(url) && URL.canParse(url), 'must be a redis:// or rediss:// URL');

/** A file that must exist. */
export const existingFile = z.string().transform((path, ctx) => (existsSync(path) ? path : fail(ctx, `no such file: ${path}`)));

/** A directory path (it need not exist yet, but must not be something else), or `off` (undefined). */
export const directoryOrOff = z.string().transform((dir, ctx) => {
  if (dir === 'off') return undefined;
  if (existsSync(dir) && !statSync(dir).isDirectory()) return fail(ctx, `${dir} exists and is not a directory`);
  return dir;
});

/** A path, checked by whoever reads the file. */
export const path = z.string();

const SERVER_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/;

export const serverName = z.string().regex(SERVER_NAME, 'must be a host name');

export const onStoreError = z.enum(['deny', 'error']);
export const checkLog = z.enum(['off', 'denied', 'all']);
export const redisFailureMode = z.enum(['local', 'deny']);
export const rateLimitMode = z.enum(['strict', 'approximate']);
/** A fraction, 0–1. */
export const fraction = z.coerce.number().min(0).max(1);
