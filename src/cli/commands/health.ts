/**
 * `keyward health [--ready] [--timeout-ms N]`: GET /healthz (or /readyz) from this host's
 * operations HTTP server (KEYWARD_HTTP_LISTEN; a wildcard address is asked on loopback),
 * for the image's HEALTHCHECK, which has no curl. HTTPS, unverified, when KEYWARD_HTTP_TLS_CERT
 * is set. Exit 0 on HTTP 200 (body on stdout), 1 on any other answer or none, 2 on bad config.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Command } from 'commander';
import { ConfigError } from '../../config';
import type { CliContext } from './shared';
import { CliError, countOption, UsageError } from '../options';

const LISTEN = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/;

/** The host and port `keyward health` asks, from KEYWARD_HTTP_LISTEN. */
export function healthTarget(env: Record<string, string | undefined>): { host: string; port: number } {
  const name = 'KEYWARD_HTTP_LISTEN';
  const v = env[name] === undefined || env[name] === '' ? '127.0.0.1:9193' : env[name];
  if (v === 'off') throw new ConfigError(name, 'is off: no operations HTTP server to ask');
  const m = LISTEN.exec(v);
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) throw new ConfigError(name, `expected host:port with a port 1-65535, got ${JSON.stringify(v)}`);
  const v6 = m[1];
  if (v6 !== undefined) return { host: v6 === '::' ? '::1' : v6, port };
  return { host: m[2] === '0.0.0.0' ? '127.0.0.1' : m[2]!, port };
}

function get(tls: boolean, host: string, port: number, path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const options = { host, port, path, method: 'GET', agent: false, signal: AbortSignal.timeout(timeoutMs) };
    const onResponse = (res: IncomingMessage) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (body.length < 4096) body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.slice(0, 4096) }));
      res.on('error', reject);
    };
    const req = tls ? httpsRequest({ ...options, rejectUnauthorized: false }, onResponse) : httpRequest(options, onResponse);
    req.on('error', reject);
    req.end();
  });
}

function reason(e: unknown, timeoutMs: number): string {
  const err = e as NodeJS.ErrnoException;
  if (err?.name === 'AbortError' || err?.name === 'TimeoutError' || err?.code === 'ABORT_ERR') return `no answer within ${timeoutMs} ms`;
  if (err?.code === 'ECONNREFUSED') return 'connection refused';
  return err?.code ?? (err instanceof Error ? err.message : String(e));
}

export function healthCommand(program: Command, ctx: CliContext): void {
  program
    .command('health')
    .description(
      "ask the local keyward's operations HTTP server (KEYWARD_HTTP_LISTEN) for /healthz, or /readyz with --ready; exit 0 if it answers 200",
    )
    .option('--ready', 'ask /readyz (store reachable, migrations applied) instead of /healthz (process alive)')
    .addOption(countOption('--timeout-ms <n>', 'how long to wait for the answer (default 3000)', 600_000))
    .action(async (opts: { ready?: boolean; timeoutMs?: number }) => {
      const timeoutMs = opts.timeoutMs ?? 3000;
      if (timeoutMs < 1) throw new UsageError('--timeout-ms must be at least 1');
      const { host, port } = healthTarget(ctx.env);
      const path = opts.ready ? '/readyz' : '/healthz';
      const tls = (ctx.env.KEYWARD_HTTP_TLS_CERT ?? '') !== '';
      const where = `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}${path}`;
      let answer: { status: number; body: string };
      try {
        answer = await get(tls, host, port, path, timeoutMs);
      } catch (e) {
        throw new CliError('unavailable', `GET ${where}: ${reason(e, timeoutMs)}`, 1);
      }
      const body = answer.body.trim();
      if (answer.status !== 200) throw new CliError('unavailable', `GET ${where}: HTTP ${answer.status}${body ? ` ${body}` : ''}`, 1);
      ctx.write(`${body}\n`);
    });
}
