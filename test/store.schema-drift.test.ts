/**
 * The migrations and the entities describe the same schema, on both dialects: after
 * every migration is applied to a fresh database, MikroORM's schema generator finds
 * nothing to change between the entities and the database.
 *
 * One difference is tolerated on SQLite, by name: an autoincrement primary key must be
 * declared INTEGER there (the rowid alias, 64-bit), where the entities say bigint; the
 * generator reports it as a type change forever (the migration files note it too).
 */
import { DatabaseSchema, type EntityManager, type SqlSchemaGenerator } from '@mikro-orm/knex';
import { migrate, openOrm } from '../src/store/orm';
import { createTestDatabase, DIALECTS } from './support/databases';

describe.each(DIALECTS)('schema drift on %s', (dialect) => {
  it('the migrations build exactly the schema the entities describe', async () => {
    const db = await createTestDatabase(dialect);
    const orm = await openOrm(db.config);
    try {
      await migrate(orm);
      const generator = orm.schema as unknown as SqlSchemaGenerator;
      const em = orm.em as unknown as EntityManager;
      const target = generator.getTargetSchema();
      const actual = await DatabaseSchema.create(em.getConnection(), em.getPlatform(), orm.config, undefined, target.getNamespaces());
      expect(actual.getTables().length).toBeGreaterThan(0);

      const tolerated: string[] = [];
      if (dialect === 'sqlite')
        for (const table of actual.getTables())
          for (const column of table.getColumns()) {
            const wanted = target.getTable(table.name)?.getColumn(column.name);
            if (column.primary && column.autoincrement && column.type.toLowerCase() === 'integer' && wanted?.type === 'bigint') {
              column.ignoreSchemaChanges = ['type'];
              tolerated.push(`${table.name}.${column.name}`);
            }
          }
      expect(tolerated.sort()).toEqual(
        dialect === 'sqlite' ? ['audit_events.id', 'usage_events.id', 'webhook_attempts.id', 'webhook_deliveries.id'] : [],
      );

      expect(await generator.getUpdateSchemaSQL({ fromSchema: actual, safe: false, dropTables: true })).toBe('');
    } finally {
      await orm.close(true);
      await db.dispose();
    }
  });
});
