import { Migration } from '@mikro-orm/migrations';

export class Migration20261126034751 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "admin_tokens" add column "hash_secret_id" varchar(16) null;`);

    this.addSql(`alter table "api_keys" add column "hash_secret_id" varchar(16) null;`);
    this.addSql(`create index "api_keys_hash_secret_id_index" on "api_keys" ("hash_secret_id");`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "admin_tokens" drop column "hash_secret_id";`);

    this.addSql(`drop index "api_keys_hash_secret_id_index";`);
    this.addSql(`alter table "api_keys" drop column "hash_secret_id";`);
  }
}
