import { Migration } from '@mikro-orm/migrations';

// Key and organization lifecycle: disabled keys and deleted organizations.
export class Migration20261205014352 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "api_keys" add column "disabled_at" timestamptz null;`);
    this.addSql(`alter table "organizations" add column "deleted_at" timestamptz null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "api_keys" drop column "disabled_at";`);
    this.addSql(`alter table "organizations" drop column "deleted_at";`);
  }
}
