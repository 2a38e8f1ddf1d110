import { Migration } from '@mikro-orm/migrations';

export class Migration20261126034654 extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "usage_batches" ("id" varchar(32) not null, "written_at" timestamptz not null, constraint "usage_batches_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "usage_batches_written_at_index" on "usage_batches" ("written_at");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "usage_batches" cascade;`);
  }
}
