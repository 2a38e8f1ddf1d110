/**
 * The migrations of each dialect, in order. Each file in sqlite/ and postgres/ is
 * generated from the entity schemas by `npm run migration:create -- <dialect>` and
 * then committed. Never rewrite one that has shipped; add a new one and list it here.
 */
import type { MigrationObject } from '@mikro-orm/core';
import { Migration20261125194023 as SqliteInitial } from './sqlite/Migration20261125194023';
import { Migration20261125202938 as SqliteUsage } from './sqlite/Migration20261125202938';
import { Migration20261125194025 as PostgresInitial } from './postgres/Migration20261125194025';
import { Migration20261125202942 as PostgresUsage } from './postgres/Migration20261125202942';

export const sqliteMigrations: MigrationObject[] = [
  { name: 'Migration20261125194023', class: SqliteInitial },
  { name: 'Migration20261125202938', class: SqliteUsage },
];
export const postgresMigrations: MigrationObject[] = [
  { name: 'Migration20261125194025', class: PostgresInitial },
  { name: 'Migration20261125202942', class: PostgresUsage },
];
