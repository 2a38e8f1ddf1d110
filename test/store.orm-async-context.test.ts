/**
 * MikroORM's AsyncLocalStorage instances are recorded when MikroORM loads, are on
 * inside a transaction (as MikroORM needs), and are off again once no transaction is
 * in flight, so the Check path pays no async hook (src/store/orm-async-context.ts).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ormContextState, withOrmContext } from '../src/store/orm-async-context';
import { startHarness, type Harness } from './support/harness';

const SRC = join(__dirname, '..', 'src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'gen' ? [] : sources(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

describe('MikroORM is loaded with its contexts recorded', () => {
  it('every module that loads MikroORM imports orm-async-context first', () => {
    const offenders: string[] = [];
    for (const file of sources(SRC)) {
      const rel = relative(SRC, file);
      if (/^store\/migrations\/(postgres|sqlite)\//.test(rel)) continue; // loaded through migrations/index.ts, checked below
      const lines = readFileSync(file, 'utf8').split('\n');
      const loads = lines.findIndex((l) => /^import (?!type )[^;]*from '@mikro-orm\//.test(l));
      if (loads < 0) continue;
      const patch = lines.findIndex((l) => /^import [^;]*'\.{1,2}\/(store\/)?orm-async-context';/.test(l));
      if (patch < 0 || patch > loads) offenders.push(rel);
    }
    expect(offenders).toEqual([]);
    // The migration classes are reached only through migrations/index.ts.
    const importers = sources(SRC).filter((f) => /from '\.\/(postgres|sqlite)\/Migration/.test(readFileSync(f, 'utf8')));
    expect(importers.map((f) => relative(SRC, f))).toEqual(['store/migrations/index.ts']);
  });
});

describe.each(['sqlite', 'postgres'] as const)('MikroORM contexts on %s', (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness(dialect);
  });
  afterAll(() => h.stop());

  /** Until the calls the app started by itself (the start-up purge) have ended. */
  async function idle(): Promise<void> {
    for (let i = 0; i < 10_000 && ormContextState().inFlight > 0; i++) await new Promise((resolve) => setImmediate(resolve));
    expect(ormContextState().inFlight).toBe(0);
  }

  it('are off once start-up is over and after each transaction, on inside one', async () => {
    expect(ormContextState().recorded).toBeGreaterThanOrEqual(3);
    await idle();
    expect(ormContextState().enabled).toBe(0);
    const inside = await h.app.store.transaction(() => Promise.resolve(ormContextState().enabled));
    expect(inside).toBeGreaterThan(0);
    expect(ormContextState().enabled).toBe(0);
    await h.root.createOrganization({ name: 'Contexts' });
    await idle();
    expect(ormContextState().enabled).toBe(0);
  });

  it('stay on while another ORM call is still in flight', async () => {
    await idle();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const outer = withOrmContext(() => held);
    await h.app.store.transaction(() => Promise.resolve());
    expect(ormContextState().enabled).toBeGreaterThan(0);
    release();
    await outer;
    expect(ormContextState().enabled).toBe(0);
  });
});
