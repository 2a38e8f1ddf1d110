/** The webhook settings of the settings table (./settings.ts); docs/events-webhooks.md explains them. */
import type { Setting } from './settings';
import * as schema from './schemas';

export const WEBHOOK_SETTINGS = {
  KEYWARD_WEBHOOK_ALLOW_INSECURE: {
    group: 'controlPlane',
    default: 'false',
    schema: schema.bool,
    description:
      'Webhooks may also target `http://` URLs and loopback or private addresses (development and tests only); otherwise only `https://` on public addresses.',
  },
  KEYWARD_WEBHOOK_TIMEOUT_MS: {
    group: 'controlPlane',
    default: '10000',
    schema: schema.intIn(100, 60_000),
    description: 'How long one webhook delivery attempt may take, in ms (100–60000); longer counts as a failed attempt.',
  },
  KEYWARD_WEBHOOK_PAUSE_AFTER_FAILURES: {
    group: 'controlPlane',
    default: '20',
    schema: schema.intIn(1, 10_000),
    description: 'Failed attempts in a row after which a webhook endpoint is paused (audited as `webhook.paused`) until re-enabled.',
  },
} as const satisfies Record<string, Setting>;
