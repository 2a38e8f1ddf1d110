import { Migration } from '@mikro-orm/migrations';

export class Migration20261205014426 extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "webhook_attempts" ("id" bigserial primary key, "delivery_id" bigint not null, "webhook_id" varchar(32) not null, "at" timestamptz not null, "status_code" smallint null, "duration_ms" double precision not null, "error" varchar(64) null);`,
    );
    this.addSql(`create index "webhook_attempts_delivery_id_id_index" on "webhook_attempts" ("delivery_id", "id");`);
    this.addSql(`create index "webhook_attempts_webhook_id_index" on "webhook_attempts" ("webhook_id");`);

    this.addSql(
      `create table "webhook_cursor" ("id" int not null, "last_audit_id" bigint not null, "updated_at" timestamptz not null, constraint "webhook_cursor_pkey" primary key ("id"));`,
    );

    this.addSql(
      `create table "webhook_deliveries" ("id" bigserial primary key, "webhook_id" varchar(32) not null, "organization_id" varchar(32) not null, "audit_event_id" bigint not null, "event_id" varchar(40) not null, "kind" varchar(64) not null, "payload" text not null, "status" varchar(16) not null, "attempts" int not null, "next_attempt_at" timestamptz not null, "created_at" timestamptz not null, "last_attempt_at" timestamptz null, "last_status_code" smallint null, "last_error" varchar(64) null, "delivered_at" timestamptz null);`,
    );
    this.addSql(`create index "webhook_deliveries_status_next_attempt_at_index" on "webhook_deliveries" ("status", "next_attempt_at");`);
    this.addSql(`create index "webhook_deliveries_webhook_id_id_index" on "webhook_deliveries" ("webhook_id", "id");`);
    this.addSql(
      `alter table "webhook_deliveries" add constraint "webhook_deliveries_webhook_id_audit_event_id_unique" unique ("webhook_id", "audit_event_id");`,
    );

    this.addSql(
      `create table "webhooks" ("id" varchar(32) not null, "organization_id" varchar(32) not null, "url" varchar(2048) not null, "events" jsonb not null, "secret_sealed" varchar(256) not null, "active" boolean not null, "paused_at" timestamptz null, "consecutive_failures" int not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, constraint "webhooks_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "webhooks_organization_id_id_index" on "webhooks" ("organization_id", "id");`);
    // The dispatcher starts after the history that exists now.
    this.addSql(
      `insert into "webhook_cursor" ("id", "last_audit_id", "updated_at") select 1, coalesce(max("id"), 0), now() from "audit_events";`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "webhook_attempts" cascade;`);

    this.addSql(`drop table if exists "webhook_cursor" cascade;`);

    this.addSql(`drop table if exists "webhook_deliveries" cascade;`);

    this.addSql(`drop table if exists "webhooks" cascade;`);
  }
}
