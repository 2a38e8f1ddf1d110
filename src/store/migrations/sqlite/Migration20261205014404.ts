import { Migration } from '@mikro-orm/migrations';

// Security events in audit_events, and quota alert percentages per organization. The
// generator's rebuild of usage_events, which has not changed, is left out.

export class Migration20261205014404 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table \`audit_events\` add column \`subject\` text null;`);
    this.addSql(`alter table \`audit_events\` add column \`window_start\` datetime null;`);
    this.addSql(`alter table \`audit_events\` add column \`occurrences\` integer not null default 1;`);
    this.addSql(`alter table \`audit_events\` add column \`first_seen\` datetime null;`);
    this.addSql(`alter table \`audit_events\` add column \`last_seen\` datetime null;`);
    this.addSql(`alter table \`audit_events\` add column \`client_address\` text null;`);
    this.addSql(
      `create unique index \`audit_events_action_subject_window_start_unique\` on \`audit_events\` (\`action\`, \`subject\`, \`window_start\`);`,
    );

    this.addSql(`alter table \`organizations\` add column \`quota_alert_percents\` text null;`);
  }
}
