import { Migration } from '@mikro-orm/migrations';

export class Migration20261125194023 extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table \`admin_tokens\` (\`id\` text not null, \`token_hash\` text not null, \`label\` text not null, \`created_at\` datetime not null, primary key (\`id\`));`,
    );
    this.addSql(`create unique index \`admin_tokens_token_hash_unique\` on \`admin_tokens\` (\`token_hash\`);`);

    this.addSql(
      `create table \`api_keys\` (\`id\` text not null, \`organization_id\` text not null, \`name\` text not null, \`environment\` text not null, \`scopes\` json not null, \`prefix\` text not null, \`hint\` text not null, \`key_hash\` text not null, \`created_at\` datetime not null, \`updated_at\` datetime not null, \`expires_at\` datetime null, \`last_used_at\` datetime null, \`revoked_at\` datetime null, \`revoked_by\` text null, \`revoke_reason\` text null, \`rate_limit_per_minute\` integer null, \`metadata\` json not null, \`replaced_by_key_id\` text null, \`rotated_from_key_id\` text null, primary key (\`id\`));`,
    );
    this.addSql(`create unique index \`api_keys_key_hash_unique\` on \`api_keys\` (\`key_hash\`);`);
    this.addSql(`create index \`api_keys_organization_id_id_index\` on \`api_keys\` (\`organization_id\`, \`id\`);`);

    this.addSql(
      `create table \`audit_events\` (\`id\` integer not null primary key autoincrement, \`at\` datetime not null, \`actor\` text not null, \`action\` text not null, \`organization_id\` text null, \`key_id\` text null, \`outcome\` text not null, \`reason\` text null, \`peer\` text null);`,
    );
    this.addSql(`create index \`audit_events_organization_id_id_index\` on \`audit_events\` (\`organization_id\`, \`id\`);`);
    this.addSql(`create index \`audit_events_key_id_id_index\` on \`audit_events\` (\`key_id\`, \`id\`);`);
    this.addSql(`create index \`audit_events_at_index\` on \`audit_events\` (\`at\`);`);

    this.addSql(
      `create table \`organizations\` (\`id\` text not null, \`name\` text not null, \`active\` integer not null, \`max_keys\` integer not null, \`rate_limit_per_minute\` integer not null, \`monthly_quota\` bigint not null, \`billing_anchor_day\` integer not null, \`created_at\` datetime not null, \`updated_at\` datetime not null, primary key (\`id\`));`,
    );
  }
}
