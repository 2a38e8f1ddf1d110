/**
 * `npm run migration:create -- <sqlite|postgres> [POSTGRES_URL]`: writes the next
 * migration of one dialect into src/store/migrations/<dialect>/, generated from the
 * difference between the entity schemas and a scratch database that has every
 * existing migration applied. Register the new class in src/store/migrations/index.ts.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { openOrm } from '../src/store/orm';

async function main(): Promise<void> {
  const kind = process.argv[2];
  const dir = resolve(__dirname, '../src/store/migrations', kind ?? '');
  let db;
  if (kind === 'sqlite') db = { kind, path: join(mkdtempSync(join(tmpdir(), 'kw-mig-')), 'scratch.db'), url: '' } as const;
  else if (kind === 'postgres') db = { kind, url: process.argv[3] ?? 'postgres://postgres@127.0.0.1:5432/keyward_scratch' } as const;
  else throw new Error('usage: migration-create <sqlite|postgres> [POSTGRES_URL of an empty scratch database]');
  const orm = await openOrm(db, dir);
  try {
    const migrator = orm.getMigrator();
    await migrator.up();
    const r = await migrator.createMigration(dir);
    console.log(r.fileName ? `wrote ${r.fileName}` : 'no schema changes');
  } finally {
    await orm.close();
  }
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
