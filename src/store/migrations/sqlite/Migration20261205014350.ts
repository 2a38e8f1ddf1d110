import { Migration } from '@mikro-orm/migrations';

// Trimmed by hand to the new columns: SQLite's schema differ also proposes rebuilding
// audit_events and usage_events, which have not changed.
// Key and organization lifecycle: disabled keys and deleted organizations.
export class Migration20261205014350 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table \`api_keys\` add column \`disabled_at\` datetime null;`);
    this.addSql(`alter table \`organizations\` add column \`deleted_at\` datetime null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table \`organizations\` drop column \`deleted_at\`;`);
    this.addSql(`alter table \`api_keys\` drop column \`disabled_at\`;`);
  }
}
