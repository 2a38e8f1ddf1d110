/** Starts the web console (src/console/) when KEYWARD_CONSOLE_LISTEN is not `off`. */
import type { Logger } from 'pino';
import type { AdminService } from '../admin/service';
import type { Config } from '../config';
import { startConsole, type ConsoleServer } from '../console/server';
import { ConsoleSessions } from '../console/sessions';
import type { Metrics } from '../observability/metrics';
import type { Tracing } from '../observability/tracing';
import type { ServerTls } from '../tls/server';
import type { Clock } from '../util/clock';

/** KEYWARD_CONSOLE_SESSION_IDLE_SECONDS and _MAX_SECONDS when a Config built in code leaves them out. */
const DEFAULT_SESSIONS = { sessionIdleSeconds: 1800, sessionMaxSeconds: 43_200 };

export interface ConsoleDeps {
  admin: AdminService;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  tls?: ServerTls;
  tracing?: Tracing;
}

export async function startConsoleOf(config: Config, deps: ConsoleDeps): Promise<ConsoleServer | undefined> {
  if (config.consoleListen === undefined) return undefined;
  const { sessionIdleSeconds, sessionMaxSeconds } = config.console ?? DEFAULT_SESSIONS;
  const sessions = new ConsoleSessions({ clock: deps.clock, idleMs: sessionIdleSeconds * 1000, maxMs: sessionMaxSeconds * 1000 });
  return startConsole(config.consoleListen, {
    admin: deps.admin,
    sessions,
    sessionMaxSeconds,
    logger: deps.logger,
    onCall: (method, code) => deps.metrics.adminCall(method, code),
    ...(deps.tls && { tls: deps.tls }),
    ...(deps.tracing && { tracing: deps.tracing }),
  });
}
