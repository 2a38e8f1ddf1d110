import { Migration } from '@mikro-orm/migrations';

// Trimmed by hand to the new table: SQLite's schema differ also proposes rebuilding
// audit_events and usage_events, which have not changed.
export class Migration20261205014430 extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table \`admin_requests\` (\`caller\` text not null, \`request_id\` text not null, \`rpc\` text not null, \`args_hash\` text not null, \`response\` text not null, \`sealed_secret\` text null, \`created_at\` datetime not null, primary key (\`caller\`, \`request_id\`));`,
    );
    this.addSql(`create index \`admin_requests_created_at_index\` on \`admin_requests\` (\`created_at\`);`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists \`admin_requests\`;`);
  }
}
