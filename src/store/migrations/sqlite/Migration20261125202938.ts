import { Migration } from '@mikro-orm/migrations';

export class Migration20261125202938 extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table \`quota_counters\` (\`organization_id\` text not null, \`period_start\` datetime not null, \`count\` bigint not null, primary key (\`organization_id\`, \`period_start\`));`,
    );

    this.addSql(
      `create table \`usage_daily\` (\`organization_id\` text not null, \`key_id\` text not null, \`period\` text not null, \`endpoint\` text not null, \`method\` text not null, \`requests\` bigint not null, \`errors4xx\` bigint not null, \`errors5xx\` bigint not null, \`tokens\` bigint not null, \`cost_usd\` double not null, \`duration_count\` bigint not null, \`duration_sum_ms\` double not null, \`duration_buckets\` json not null, primary key (\`organization_id\`, \`key_id\`, \`period\`, \`endpoint\`, \`method\`));`,
    );
    this.addSql(`create index \`usage_daily_organization_id_period_index\` on \`usage_daily\` (\`organization_id\`, \`period\`);`);

    this.addSql(
      `create table \`usage_events\` (\`id\` integer not null primary key autoincrement, \`at\` datetime not null, \`organization_id\` text not null, \`key_id\` text not null, \`request_id\` text null, \`endpoint\` text not null, \`method\` text not null, \`requests\` integer not null, \`status_code\` integer null, \`duration_ms\` double null, \`tokens\` bigint null, \`cost_usd\` double null, \`source\` text not null);`,
    );
    this.addSql(`create index \`usage_events_organization_id_at_index\` on \`usage_events\` (\`organization_id\`, \`at\`);`);
    this.addSql(`create index \`usage_events_at_index\` on \`usage_events\` (\`at\`);`);
    this.addSql(`create index \`usage_events_request_id_index\` on \`usage_events\` (\`request_id\`);`);

    this.addSql(
      `create table \`usage_monthly\` (\`organization_id\` text not null, \`key_id\` text not null, \`period\` text not null, \`endpoint\` text not null, \`method\` text not null, \`requests\` bigint not null, \`errors4xx\` bigint not null, \`errors5xx\` bigint not null, \`tokens\` bigint not null, \`cost_usd\` double not null, \`duration_count\` bigint not null, \`duration_sum_ms\` double not null, \`duration_buckets\` json not null, primary key (\`organization_id\`, \`key_id\`, \`period\`, \`endpoint\`, \`method\`));`,
    );
    this.addSql(`create index \`usage_monthly_organization_id_period_index\` on \`usage_monthly\` (\`organization_id\`, \`period\`);`);

    this.addSql(`pragma foreign_keys = off;`);
    this.addSql(
      `create table \`audit_events__temp_alter\` (\`id\` integer not null primary key autoincrement, \`at\` datetime not null, \`actor\` text not null, \`action\` text not null, \`organization_id\` text null, \`key_id\` text null, \`outcome\` text not null, \`reason\` text null, \`peer\` text null);`,
    );
    this.addSql(
      `insert into \`audit_events__temp_alter\` select \`id\`, \`at\`, \`actor\`, \`action\`, \`organization_id\`, \`key_id\`, \`outcome\`, \`reason\`, \`peer\` from \`audit_events\`;`,
    );
    this.addSql(`drop table \`audit_events\`;`);
    this.addSql(`alter table \`audit_events__temp_alter\` rename to \`audit_events\`;`);
    this.addSql(`create index \`audit_events_organization_id_id_index\` on \`audit_events\` (\`organization_id\`, \`id\`);`);
    this.addSql(`create index \`audit_events_key_id_id_index\` on \`audit_events\` (\`key_id\`, \`id\`);`);
    this.addSql(`create index \`audit_events_at_index\` on \`audit_events\` (\`at\`);`);
    this.addSql(`pragma foreign_keys = on;`);
  }
}
