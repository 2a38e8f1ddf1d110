import { Migration } from '@mikro-orm/migrations';

export class Migration20261125194025 extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "admin_tokens" ("id" varchar(32) not null, "token_hash" varchar(64) not null, "label" varchar(64) not null, "created_at" timestamptz not null, constraint "admin_tokens_pkey" primary key ("id"));`,
    );
    this.addSql(`alter table "admin_tokens" add constraint "admin_tokens_token_hash_unique" unique ("token_hash");`);

    this.addSql(
      `create table "api_keys" ("id" varchar(32) not null, "organization_id" varchar(32) not null, "name" varchar(200) not null, "environment" varchar(8) not null, "scopes" jsonb not null, "prefix" varchar(16) not null, "hint" varchar(8) not null, "key_hash" varchar(64) not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "expires_at" timestamptz null, "last_used_at" timestamptz null, "revoked_at" timestamptz null, "revoked_by" varchar(64) null, "revoke_reason" varchar(500) null, "rate_limit_per_minute" int null, "metadata" jsonb not null, "replaced_by_key_id" varchar(32) null, "rotated_from_key_id" varchar(32) null, constraint "api_keys_pkey" primary key ("id"));`,
    );
    this.addSql(`alter table "api_keys" add constraint "api_keys_key_hash_unique" unique ("key_hash");`);
    this.addSql(`create index "api_keys_organization_id_id_index" on "api_keys" ("organization_id", "id");`);

    this.addSql(
      `create table "audit_events" ("id" bigserial primary key, "at" timestamptz not null, "actor" varchar(64) not null, "action" varchar(64) not null, "organization_id" varchar(32) null, "key_id" varchar(32) null, "outcome" varchar(16) not null, "reason" varchar(500) null, "peer" varchar(128) null);`,
    );
    this.addSql(`create index "audit_events_organization_id_id_index" on "audit_events" ("organization_id", "id");`);
    this.addSql(`create index "audit_events_key_id_id_index" on "audit_events" ("key_id", "id");`);
    this.addSql(`create index "audit_events_at_index" on "audit_events" ("at");`);

    this.addSql(
      `create table "organizations" ("id" varchar(32) not null, "name" varchar(200) not null, "active" boolean not null, "max_keys" int not null, "rate_limit_per_minute" int not null, "monthly_quota" bigint not null, "billing_anchor_day" smallint not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, constraint "organizations_pkey" primary key ("id"));`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "admin_tokens" cascade;`);

    this.addSql(`drop table if exists "api_keys" cascade;`);

    this.addSql(`drop table if exists "audit_events" cascade;`);

    this.addSql(`drop table if exists "organizations" cascade;`);
  }
}
