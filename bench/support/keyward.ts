/**
 * What the benchmarks and the soak share for talking to a real keyward: KeyAdmin
 * calls with the administrator token, a Check from raw request bytes, the deny code of
 * an answer, a process's memory from /proc, its warn-and-above log lines, and the
 * redaction of secret-shaped text before anything is printed.
 */
import { readFileSync } from 'node:fs';
import { Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import { CheckResponse } from '../../src/gen/envoy/service/auth/v3/external_auth';

export const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';
export const ALS_PATH = '/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs';

export const identity = (b: Buffer): Buffer => b;

/** A generated client's unary method, bound, in its (request, metadata, options, callback) form. */
export type UnaryMethod<Req, Res> = (
  req: Req,
  md: Metadata,
  opts: { deadline: number },
  cb: (e: ServiceError | null, r: Res) => void,
) => unknown;

/** A caller of KeyAdmin methods that sends `authorization: Bearer <token>`. */
export function adminUnary(token: string): <Req, Res>(fn: UnaryMethod<Req, Res>, req: Req, timeoutMs?: number) => Promise<Res> {
  return <Req, Res>(fn: UnaryMethod<Req, Res>, req: Req, timeoutMs = 30_000): Promise<Res> => {
    const md = new Metadata();
    md.set('authorization', `Bearer ${token}`);
    return new Promise((resolve, reject) => fn(req, md, { deadline: Date.now() + timeoutMs }, (e, r) => (e ? reject(e) : resolve(r))));
  };
}

/** Sends exactly `payload` (CheckRequest bytes) as the Check request and decodes the CheckResponse. */
export function rawCheck(client: Client, payload: Buffer, timeoutMs = 10_000): Promise<CheckResponse> {
  return new Promise((resolve, reject) =>
    client.makeUnaryRequest(
      CHECK_PATH,
      identity,
      identity,
      payload,
      { deadline: Date.now() + timeoutMs },
      (e: ServiceError | null, r?: Buffer) => (e ? reject(e) : resolve(CheckResponse.decode(r!))),
    ),
  );
}

/** The deny code of a Check answer: the JSON body's error.code and the metadata's error_code, which must agree. */
export function denyCode(r: CheckResponse): string | undefined {
  if (!r.deniedResponse) return undefined;
  let body: string | undefined;
  try {
    body = (JSON.parse(r.deniedResponse.body) as { error?: { code?: string } }).error?.code;
  } catch {
    body = undefined;
  }
  const md: unknown = r.dynamicMetadata?.error_code;
  return body === md ? body : `body=${String(body)} metadata=${String(md)}`;
}

/** VmRSS and VmHWM of a process, in kB (NaN once it has exited). */
export function memoryOf(pid: number): { rssKb: number; hwmKb: number } {
  let s = '';
  try {
    s = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    // gone
  }
  const kb = (f: string) => Number(new RegExp(`^${f}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN);
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
}

/** Hides keys, admin tokens, 64-hex-digit hashes and the given secret values in text to print. */
export function redact(s: string, secrets: string[] = []): string {
  let out = s;
  for (const secret of secrets) if (secret) out = out.split(secret).join('<secret>');
  return out
    .replace(/\bkw_(?:live|test)_[0-9A-Za-z]{49}\b/g, 'kw_<key>')
    .replace(/\bkwadm_[0-9A-Za-z]{49}\b/g, 'kwadm_<token>')
    .replace(/\b[0-9a-f]{64}\b/g, '<hash>');
}

/** keyward's JSON log lines (pino, on stdout) and those of them at warn level or above. */
export function logLines(stdout: string): { lines: string[]; warnings: string[] } {
  const lines = stdout.split('\n').filter((l) => l.startsWith('{'));
  return { lines, warnings: lines.filter((l) => /"level":(40|50|60)/.test(l)) };
}

/** `url` (a postgres:// URL) pointing at another database on the same server. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
