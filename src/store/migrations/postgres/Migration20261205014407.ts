import { Migration } from '@mikro-orm/migrations';

export class Migration20261205014407 extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `alter table "audit_events" add column "subject" varchar(64) null, add column "window_start" timestamptz null, add column "occurrences" int not null default 1, add column "first_seen" timestamptz null, add column "last_seen" timestamptz null, add column "client_address" varchar(64) null;`,
    );
    this.addSql(
      `alter table "audit_events" add constraint "audit_events_action_subject_window_start_unique" unique ("action", "subject", "window_start");`,
    );

    this.addSql(`alter table "organizations" add column "quota_alert_percents" varchar(64) null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "audit_events" drop constraint "audit_events_action_subject_window_start_unique";`);
    this.addSql(
      `alter table "audit_events" drop column "subject", drop column "window_start", drop column "occurrences", drop column "first_seen", drop column "last_seen", drop column "client_address";`,
    );

    this.addSql(`alter table "organizations" drop column "quota_alert_percents";`);
  }
}
