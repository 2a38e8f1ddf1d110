import { Migration } from '@mikro-orm/migrations';

// Trimmed by hand to the new table: SQLite's schema differ also proposes rebuilding
// audit_events and usage_events, which have not changed.
export class Migration20261126034650 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create table \`usage_batches\` (\`id\` text not null, \`written_at\` datetime not null, primary key (\`id\`));`);
    this.addSql(`create index \`usage_batches_written_at_index\` on \`usage_batches\` (\`written_at\`);`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists \`usage_batches\`;`);
  }
}
