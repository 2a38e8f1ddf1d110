/**
 * A real `keyward serve` process (the built dist/), for tests that need separate
 * processes: several replicas, signals, restarts. It must log at info or finer: the
 * ports are read from the "keyward serving" line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BIN = join(__dirname, '..', '..', 'dist', 'cli', 'main.js');

export interface ServerProcess {
  proc: ChildProcess;
  adminPort: number;
  authzPort: number;
  /** The operations HTTP port, unless KEYWARD_HTTP_LISTEN is off. */
  httpPort?: number;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * `nodeArgs` go to node before the script (for example --cpu-prof). Each process gets
 * its own usage journal directory (one process per directory) unless `env` names one.
 */
export async function startServerProcess(env: Record<string, string>, cwd?: string, nodeArgs: string[] = []): Promise<ServerProcess> {
  const proc = spawn(process.execPath, [...nodeArgs, BIN, 'serve'], {
    cwd,
    env: {
      PATH: process.env.PATH ?? '',
      KEYWARD_ADMIN_LISTEN: '127.0.0.1:0',
      KEYWARD_AUTHZ_LISTEN: '127.0.0.1:0',
      KEYWARD_HTTP_LISTEN: '127.0.0.1:0',
      KEYWARD_CONSOLE_LISTEN: '127.0.0.1:0',
      KEYWARD_USAGE_JOURNAL_DIR: join(mkdtempSync(join(tmpdir(), 'keyward-journal-')), 'journal'),
      ...env,
    },
  });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d) => (out += String(d)));
  proc.stderr.on('data', (d) => (err += String(d)));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const line = out.split('\n').find((l) => l.includes('"keyward serving"'));
    if (line) {
      const j = JSON.parse(line) as { admin: string; authz: string; http?: string };
      const port = (a: string) => Number(a.split(':').pop());
      return {
        proc,
        adminPort: port(j.admin),
        authzPort: port(j.authz),
        httpPort: j.http === undefined ? undefined : port(j.http),
        stdout: () => out,
        stderr: () => err,
        exited,
        async stop(signal: NodeJS.Signals = 'SIGTERM') {
          if (proc.exitCode === null) proc.kill(signal);
          return exited;
        },
      };
    }
    if (Date.now() > deadline || proc.exitCode !== null) {
      proc.kill('SIGKILL');
      throw new Error(`keyward serve did not start:\n${out}\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
