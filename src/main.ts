/**
 * Entry points of `keyward serve` and `keyward migrate`.
 * A configuration error prints one line naming the variable and exits with status 2.
 */
import { ConfigError, loadConfig, type Config } from './config';
import { createLogger } from './util/logger';
import { startApp } from './app';
import { openOrm, migrate } from './store/orm';

function configOrExit(): Config {
  try {
    return loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`keyward: configuration error: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

export async function serveCommand(opts: { migrate: boolean }): Promise<void> {
  const config = configOrExit();
  const logger = createLogger(config.logLevel);
  if (config.hashSecretSource === 'generated' && config.database.kind === 'sqlite') {
    logger.warn(
      { file: config.database.path === ':memory:' ? undefined : config.database.path.replace(/\.db$/, '') + '.secret' },
      'KEYWARD_HASH_SECRET is not set; generated one and stored it beside the SQLite database. Back it up with the database: keys cannot be checked without it',
    );
  }
  const app = await startApp({ config, logger, migrate: opts.migrate && config.autoMigrate });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal; exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    app.close(10_000).then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
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
