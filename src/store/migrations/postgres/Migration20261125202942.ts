import { Migration } from '@mikro-orm/migrations';

export class Migration20261125202942 extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "quota_counters" ("organization_id" varchar(32) not null, "period_start" timestamptz not null, "count" bigint not null, constraint "quota_counters_pkey" primary key ("organization_id", "period_start"));`,
    );

    this.addSql(
      `create table "usage_daily" ("organization_id" varchar(32) not null, "key_id" varchar(32) not null, "period" varchar(10) not null, "endpoint" varchar(512) not null, "method" varchar(16) not null, "requests" bigint not null, "errors4xx" bigint not null, "errors5xx" bigint not null, "tokens" bigint not null, "cost_usd" double precision not null, "duration_count" bigint not null, "duration_sum_ms" double precision not null, "duration_buckets" jsonb not null, constraint "usage_daily_pkey" primary key ("organization_id", "key_id", "period", "endpoint", "method"));`,
    );
    this.addSql(`create index "usage_daily_organization_id_period_index" on "usage_daily" ("organization_id", "period");`);

    this.addSql(
      `create table "usage_events" ("id" bigserial primary key, "at" timestamptz not null, "organization_id" varchar(32) not null, "key_id" varchar(32) not null, "request_id" varchar(128) null, "endpoint" varchar(512) not null, "method" varchar(16) not null, "requests" smallint not null, "status_code" smallint null, "duration_ms" double precision null, "tokens" bigint null, "cost_usd" double precision null, "source" varchar(16) not null);`,
    );
    this.addSql(`create index "usage_events_organization_id_at_index" on "usage_events" ("organization_id", "at");`);
    this.addSql(`create index "usage_events_at_index" on "usage_events" ("at");`);
    this.addSql(`create index "usage_events_request_id_index" on "usage_events" ("request_id");`);

    this.addSql(
      `create table "usage_monthly" ("organization_id" varchar(32) not null, "key_id" varchar(32) not null, "period" varchar(7) not null, "endpoint" varchar(512) not null, "method" varchar(16) not null, "requests" bigint not null, "errors4xx" bigint not null, "errors5xx" bigint not null, "tokens" bigint not null, "cost_usd" double precision not null, "duration_count" bigint not null, "duration_sum_ms" double precision not null, "duration_buckets" jsonb not null, constraint "usage_monthly_pkey" primary key ("organization_id", "key_id", "period", "endpoint", "method"));`,
    );
    this.addSql(`create index "usage_monthly_organization_id_period_index" on "usage_monthly" ("organization_id", "period");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "quota_counters" cascade;`);

    this.addSql(`drop table if exists "usage_daily" cascade;`);

    this.addSql(`drop table if exists "usage_events" cascade;`);

    this.addSql(`drop table if exists "usage_monthly" cascade;`);
  }
}
