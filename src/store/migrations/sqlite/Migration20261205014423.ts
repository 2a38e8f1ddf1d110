import { Migration } from '@mikro-orm/migrations';

export class Migration20261205014423 extends Migration {
  // The autoincrement ids are INTEGER (the rowid alias, 64-bit) where the entities say bigint; see test/store.schema-drift.test.ts.
  override async up(): Promise<void> {
    this.addSql(
      `create table \`webhook_attempts\` (\`id\` integer not null primary key autoincrement, \`delivery_id\` bigint not null, \`webhook_id\` text not null, \`at\` datetime not null, \`status_code\` integer null, \`duration_ms\` double not null, \`error\` text null);`,
    );
    this.addSql(`create index \`webhook_attempts_delivery_id_id_index\` on \`webhook_attempts\` (\`delivery_id\`, \`id\`);`);
    this.addSql(`create index \`webhook_attempts_webhook_id_index\` on \`webhook_attempts\` (\`webhook_id\`);`);

    this.addSql(
      `create table \`webhook_cursor\` (\`id\` integer not null, \`last_audit_id\` bigint not null, \`updated_at\` datetime not null, primary key (\`id\`));`,
    );

    this.addSql(
      `create table \`webhook_deliveries\` (\`id\` integer not null primary key autoincrement, \`webhook_id\` text not null, \`organization_id\` text not null, \`audit_event_id\` bigint not null, \`event_id\` text not null, \`kind\` text not null, \`payload\` text not null, \`status\` text not null, \`attempts\` integer not null, \`next_attempt_at\` datetime not null, \`created_at\` datetime not null, \`last_attempt_at\` datetime null, \`last_status_code\` integer null, \`last_error\` text null, \`delivered_at\` datetime null);`,
    );
    this.addSql(
      `create index \`webhook_deliveries_status_next_attempt_at_index\` on \`webhook_deliveries\` (\`status\`, \`next_attempt_at\`);`,
    );
    this.addSql(`create index \`webhook_deliveries_webhook_id_id_index\` on \`webhook_deliveries\` (\`webhook_id\`, \`id\`);`);
    this.addSql(
      `create unique index \`webhook_deliveries_webhook_id_audit_event_id_unique\` on \`webhook_deliveries\` (\`webhook_id\`, \`audit_event_id\`);`,
    );

    this.addSql(
      `create table \`webhooks\` (\`id\` text not null, \`organization_id\` text not null, \`url\` text not null, \`events\` json not null, \`secret_sealed\` text not null, \`active\` integer not null, \`paused_at\` datetime null, \`consecutive_failures\` integer not null, \`created_at\` datetime not null, \`updated_at\` datetime not null, primary key (\`id\`));`,
    );
    this.addSql(`create index \`webhooks_organization_id_id_index\` on \`webhooks\` (\`organization_id\`, \`id\`);`);

    this.addSql(
      `insert into \`webhook_cursor\` (\`id\`, \`last_audit_id\`, \`updated_at\`) select 1, coalesce(max(\`id\`), 0), CURRENT_TIMESTAMP from \`audit_events\`;`,
    );
  }
}
