/** The usage group of the settings table (./settings.ts): metering, its journal and its limits, and security events (written with usage). */
import type { Setting } from './settings';
import * as schema from './schemas';

export const USAGE_SETTINGS = {
  KEYWARD_USAGE_FLUSH_SECONDS: {
    group: 'usage',
    default: '5',
    schema: schema.intIn(1, 3600),
    description: 'How often buffered usage is written (1–3600).',
  },
  KEYWARD_USAGE_BUFFER_MAX: {
    group: 'usage',
    default: '200000',
    schema: schema.intIn(1000, 50_000_000),
    description: 'Usage events buffered in memory at most while the store is unreachable.',
  },
  KEYWARD_USAGE_JOURNAL_DIR: {
    group: 'usage',
    default: './data/usage-journal',
    schema: schema.directoryOrOff,
    echo: false,
    description:
      'The local directory where usage batches the store cannot take wait to be replayed; `off`, none (usage waits in memory only).',
  },
  KEYWARD_USAGE_JOURNAL_MAX_MB: {
    group: 'usage',
    default: '1024',
    schema: schema.intIn(1, 1_048_576),
    description: 'The most the usage journal holds on disk, in MB.',
  },
  KEYWARD_USAGE_JOURNAL_SYNC_MS: {
    group: 'usage',
    default: '200',
    schema: schema.intIn(10, 60_000),
    description:
      'How often usage summed in memory is appended to the journal, in ms (10–60000): about the most usage a killed process loses.',
  },
  KEYWARD_USAGE_RAW_EVENTS: {
    group: 'usage',
    default: 'false',
    schema: schema.bool,
    description: 'Also store each detail record (access log, RecordUsage) as a row of usage_events; Checks are only ever summed.',
  },
  KEYWARD_USAGE_MAX_ENDPOINTS: {
    group: 'usage',
    default: '1000',
    schema: schema.intIn(1, 1_000_000),
    description: 'Distinct endpoints counted per organization and month; usage beyond lands in `(other)`.',
  },
  KEYWARD_USAGE_RETENTION_DAYS: {
    group: 'usage',
    default: '35',
    schema: schema.intIn(1, 3650),
    description: 'How long raw usage events are kept (1–3650); aggregates are kept.',
  },
  KEYWARD_USAGE_TOKENS_HEADER: {
    group: 'usage',
    default: 'x-usage-tokens',
    schema: schema.headerName,
    description: 'The upstream response header carrying the tokens a request used.',
  },
  KEYWARD_USAGE_COST_HEADER: {
    group: 'usage',
    default: 'x-usage-cost-usd',
    schema: schema.headerName,
    description: 'The upstream response header carrying its cost in USD.',
  },
  KEYWARD_SECURITY_EVENT_WINDOW_SECONDS: {
    group: 'usage',
    default: '300',
    schema: schema.intIn(10, 86_400),
    description:
      'The window of security events (10–86400 s): one audit row per kind and key per window, with its count, first and last time and last client.',
  },
} satisfies Record<string, Setting>;
