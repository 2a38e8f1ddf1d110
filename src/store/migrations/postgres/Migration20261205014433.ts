import { Migration } from '@mikro-orm/migrations';

export class Migration20261205014433 extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "admin_requests" ("caller" varchar(64) not null, "request_id" varchar(128) not null, "rpc" varchar(64) not null, "args_hash" varchar(64) not null, "response" text not null, "sealed_secret" text null, "created_at" timestamptz not null, constraint "admin_requests_pkey" primary key ("caller", "request_id"));`,
    );
    this.addSql(`create index "admin_requests_created_at_index" on "admin_requests" ("created_at");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "admin_requests" cascade;`);
  }
}
