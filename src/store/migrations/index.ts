/**
 * The migrations of each dialect, in order. Each file in sqlite/ and postgres/ is
 * generated from the entity schemas by `npm run migration:create -- <dialect>` and
 * then committed. Never rewrite one that has shipped; add a new one and list it here.
 */
// First: MikroORM is loaded with its AsyncLocalStorage instances recorded (see there).
import '../orm-async-context';
import type { MigrationObject } from '@mikro-orm/core';
import { Migration20261125194023 as SqliteInitial } from './sqlite/Migration20261125194023';
import { Migration20261125202938 as SqliteUsage } from './sqlite/Migration20261125202938';
import { Migration20261126034650 as SqliteUsageBatches } from './sqlite/Migration20261126034650';
import { Migration20261126034745 as SqliteHashSecretId } from './sqlite/Migration20261126034745';
import { Migration20261205014350 as SqliteLifecycle } from './sqlite/Migration20261205014350';
import { Migration20261205014404 as SqliteSecurityEvents } from './sqlite/Migration20261205014404';
import { Migration20261205014430 as SqliteAdminRequests } from './sqlite/Migration20261205014430';
import { Migration20261205014423 as SqliteWebhooks } from './sqlite/Migration20261205014423';
import { Migration20261125194025 as PostgresInitial } from './postgres/Migration20261125194025';
import { Migration20261125202942 as PostgresUsage } from './postgres/Migration20261125202942';
import { Migration20261126034654 as PostgresUsageBatches } from './postgres/Migration20261126034654';
import { Migration20261126034751 as PostgresHashSecretId } from './postgres/Migration20261126034751';
import { Migration20261205014352 as PostgresLifecycle } from './postgres/Migration20261205014352';
import { Migration20261205014407 as PostgresSecurityEvents } from './postgres/Migration20261205014407';
import { Migration20261205014433 as PostgresAdminRequests } from './postgres/Migration20261205014433';
import { Migration20261205014426 as PostgresWebhooks } from './postgres/Migration20261205014426';

export const sqliteMigrations: MigrationObject[] = [
  { name: 'Migration20261125194023', class: SqliteInitial },
  { name: 'Migration20261125202938', class: SqliteUsage },
  { name: 'Migration20261126034650', class: SqliteUsageBatches },
  { name: 'Migration20261126034745', class: SqliteHashSecretId },
  { name: 'Migration20261205014350', class: SqliteLifecycle },
  { name: 'Migration20261205014404', class: SqliteSecurityEvents },
  { name: 'Migration20261205014430', class: SqliteAdminRequests },
  { name: 'Migration20261205014423', class: SqliteWebhooks },
];
export const postgresMigrations: MigrationObject[] = [
  { name: 'Migration20261125194025', class: PostgresInitial },
  { name: 'Migration20261125202942', class: PostgresUsage },
  { name: 'Migration20261126034654', class: PostgresUsageBatches },
  { name: 'Migration20261126034751', class: PostgresHashSecretId },
  { name: 'Migration20261205014352', class: PostgresLifecycle },
  { name: 'Migration20261205014407', class: PostgresSecurityEvents },
  { name: 'Migration20261205014433', class: PostgresAdminRequests },
  { name: 'Migration20261205014426', class: PostgresWebhooks },
];
