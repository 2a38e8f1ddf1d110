/** The web console's settings of the settings table (./settings.ts); docs/console.md explains them. */
import type { Setting } from './settings';
import * as schema from './schemas';

export const CONSOLE_SETTINGS = {
  KEYWARD_CONSOLE_LISTEN: {
    group: 'listeners',
    default: '127.0.0.1:9194',
    schema: schema.hostPortOrOff,
    echo: false,
    emptyIsValue: true,
    description: 'host:port of the web console (HTTP, or HTTPS with KEYWARD_CONSOLE_TLS_CERT and _KEY); `off` serves none.',
  },
  KEYWARD_CONSOLE_SESSION_IDLE_SECONDS: {
    group: 'console',
    default: '1800',
    schema: schema.intIn(60, 86_400),
    description: 'A console session ends after this many seconds without a request (60–86400); the user signs in again.',
  },
  KEYWARD_CONSOLE_SESSION_MAX_SECONDS: {
    group: 'console',
    default: '43200',
    schema: schema.intIn(300, 604_800),
    description: 'A console session ends this many seconds after sign-in, however active (300–604800).',
  },
} as const satisfies Record<string, Setting>;
