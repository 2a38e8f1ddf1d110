/**
 * Entry points of `keyward serve` and `keyward migrate`.
 * A configuration error prints one line naming the variable and exits with status 2.
 */
import { capHeapGrowth } from './util/heap';
import { ConfigError, loadConfig, provision, secretFileFor, type Config } from './config';
import { createLogger, describeError } from './util/logger';
import { startApp } from './app';
import { openOrm, migrate } from './store/orm';
import { isUnavailable } from './store/store';
import { loadRouteRules, RouteRulesError, RouteTable } from './authz/routes';

/**
 * The configuration, with the files it needs created (the SQLite database's folder, a
 * generated hash secret): what `serve` and `migrate` start from.
 */
function configOrExit(): Config {
  try {
    return provision(loadConfig());
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`keyward: configuration error: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

/** The used heap above which KEYWARD_HEAP_GROWING_PERCENT applies. */
export const HEAP_CAP_ABOVE_BYTES = 128 * 1024 * 1024;

/**
 * Runs keyward until SIGTERM or SIGINT, then shuts down gracefully; resolves once it
 * has. A database that cannot be reached at start stops the process with one line.
 */
export async function serveCommand(opts: { migrate: boolean }): Promise<void> {
  const config = configOrExit();
  capHeapGrowth({ percent: config.heapGrowingPercent, aboveBytes: HEAP_CAP_ABOVE_BYTES });
  const logger = createLogger(config.logLevel);
  if (config.hashSecretSource === 'generated' && config.database.kind === 'sqlite') {
    logger.warn(
      { file: config.database.path === ':memory:' ? undefined : secretFileFor(config.database.path) },
      'KEYWARD_HASH_SECRET is not set; generated one and stored it beside the SQLite database. Back it up with the database: keys cannot be checked without it',
    );
  }
  let routes: RouteTable;
  try {
    routes = config.authz.routesFile ? loadRouteRules(config.authz.routesFile) : RouteTable.empty();
  } catch (e) {
    if (e instanceof RouteRulesError) {
      process.stderr.write(`keyward: configuration error: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
  if (routes.size > 0) logger.info({ file: config.authz.routesFile, rules: routes.size }, 'route rules loaded');
  let app;
  try {
    app = await startApp({ config, logger, routes, migrate: opts.migrate && config.autoMigrate });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`keyward: configuration error: ${e.message}\n`);
      process.exit(2);
    }
    if (isUnavailable(e)) {
      process.stderr.write(
        `keyward: cannot reach the ${config.database.kind} database (${describeError(e).code ?? describeError(e).type}); check KEYWARD_DATABASE_URL (or KEYWARD_DATABASE_URL_FILE)\n`,
      );
      process.exit(1);
    }
    throw e;
  }
  const running = app;
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        // At once, but buffered usage goes to the journal first (synchronously).
        const spilled = running.usage.spillSync();
        logger.warn({ signal, usageEventsJournaled: spilled }, 'second signal; exiting now');
        process.exit(signal === 'SIGINT' ? 130 : 143);
      }
      stopping = true;
      logger.info({ signal }, 'shutting down');
      running.close((config.shutdownDeadlineSeconds ?? 10) * 1000).then(resolve, (e: unknown) => {
        logger.error({ err: describeError(e) }, 'shutdown failed');
        resolve();
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
  logger.info('stopped');
}

export async function migrateCommand(): Promise<void> {
  const config = configOrExit();
  const logger = createLogger(config.logLevel);
  const orm = await openOrm(config.database);
  try {
    const applied = await migrate(orm);
    logger.info({ migrations: applied, database: config.database.kind }, applied.length ? 'migrations applied' : 'database is up to date');
  } finally {
    await orm.close(true);
  }
}
