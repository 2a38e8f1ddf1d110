import { Migration } from '@mikro-orm/migrations';

// Trimmed by hand to the new columns: SQLite's schema differ also proposes rebuilding
// audit_events and usage_events, which have not changed.
export class Migration20261126034745 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table \`admin_tokens\` add column \`hash_secret_id\` text null;`);

    this.addSql(`alter table \`api_keys\` add column \`hash_secret_id\` text null;`);
    this.addSql(`create index \`api_keys_hash_secret_id_index\` on \`api_keys\` (\`hash_secret_id\`);`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop index if exists \`api_keys_hash_secret_id_index\`;`);
    this.addSql(`alter table \`api_keys\` drop column \`hash_secret_id\`;`);
    this.addSql(`alter table \`admin_tokens\` drop column \`hash_secret_id\`;`);
  }
}
