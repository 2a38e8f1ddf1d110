/** `keyward serve` and `keyward migrate`: the server itself, loaded only for these two. */
import type { Command } from 'commander';

/** The server entry points, in src/main.ts; loaded only by `serve` and `migrate`. */
interface ServerMain {
  serveCommand(options: { migrate: boolean }): Promise<void>;
  migrateCommand(): Promise<void>;
}

function loadServerMain(): ServerMain {
  // Lazy, so that client commands never load the ORM and the database drivers.
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a synchronous lazy load, on purpose
  return require('../../main') as ServerMain;
}

export function serverCommands(program: Command): void {
  program
    .command('serve')
    .description('run the ext_authz and KeyAdmin gRPC servers until SIGINT/SIGTERM')
    .option('--no-migrate', 'do not apply pending database migrations at start')
    .action(async (opts: { migrate: boolean }) => {
      await loadServerMain().serveCommand({ migrate: opts.migrate });
    });

  program
    .command('migrate')
    .description('apply pending database migrations and exit')
    .action(async () => {
      await loadServerMain().migrateCommand();
    });
}
