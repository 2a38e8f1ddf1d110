#!/usr/bin/env node
/**
 * The `keyward` command line: `serve` and `migrate` run the server (src/main.ts,
 * loaded lazily); every other command is a thin KeyAdmin client.
 *
 * Exit codes: 0 success; 1 the call failed (`error: <code>: <message>` on stderr,
 * the code being keyward's error code or the gRPC status name); 2 a usage or
 * configuration error (also one line on stderr); 3 `keyward check` was denied (the
 * answer on stdout, nothing on stderr).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config';
import { isErrorCode } from '../errors/codes';
import { oneLine, redact } from './client';
import { registerCommands } from './commands';
import { CliError, ExitStatus } from './options';

interface Output {
  write(text: string): unknown;
}

export interface CliIO {
  stdout?: Output;
  stderr?: Output;
  /** The environment to read KEYWARD_* from; default process.env. */
  env?: Record<string, string | undefined>;
  /** Standard input (read only by `keyward check --key-stdin`); default process.stdin. */
  stdin?: AsyncIterable<string | Buffer>;
}

function version(): string {
  try {
    // The same relative path from src/cli/ and dist/cli/.
    return (JSON.parse(readFileSync(join(__dirname, '../../package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Commander's own messages (`error: unknown option '--x'` …) as one invalid_argument line. */
function usageLine(commanderMessage: string): string {
  return `error: invalid_argument: ${oneLine(commanderMessage.replace(/^error:\s*/, ''))}\n`;
}

export function buildProgram(io: Required<Omit<CliIO, 'stdin'>> & Pick<CliIO, 'stdin'>): Command {
  const program = new Command('keyward')
    .description('keyward: API-key authorization for Envoy (ext_authz), and its administration client')
    .version(version(), '-V, --version')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
      outputError: (s, write) => write(usageLine(s)),
    })
    .showSuggestionAfterError(true)
    .addHelpText(
      'after',
      '\nClient commands (org, key, audit) talk to KeyAdmin at KEYWARD_ADMIN_URL (default 127.0.0.1:9192)\n' +
        'with the credential in KEYWARD_ADMIN_TOKEN or KEYWARD_ADMIN_TOKEN_FILE: the administrator token, or\n' +
        'an API key with the `admin` scope. Each of them accepts --json for one JSON document on stdout.\n' +
        '\n`keyward check` sends one Check to the authz port at KEYWARD_AUTHZ_URL (default 127.0.0.1:9191).\n' +
        '\nExit status: 0 ok; 1 the server refused or could not be reached; 2 bad usage or configuration;\n' +
        '3 `keyward check` was denied.\n' +
        'Errors are one line on stderr: error: <code>: <message>',
    );
  registerCommands(program, { env: io.env, write: (s) => io.stdout.write(s), ...(io.stdin && { stdin: io.stdin }) });
  return program;
}

/**
 * Runs the CLI with `argv` being the user's arguments (without node and the script),
 * e.g. `['org', 'list', '--json']`. Returns the exit code; never calls process.exit.
 */
export async function runCli(argv: string[], io: CliIO = {}): Promise<number> {
  const full = {
    stdout: io.stdout ?? process.stdout,
    stderr: io.stderr ?? process.stderr,
    env: io.env ?? process.env,
    ...(io.stdin && { stdin: io.stdin }),
  };
  const fail = (code: string, message: string, exitCode: number): number => {
    const safe = redact(oneLine(message), full.env.KEYWARD_ADMIN_TOKEN, full.env.KEYWARD_HASH_SECRET);
    full.stderr.write(`error: ${code}: ${safe}\n`);
    return exitCode;
  };
  try {
    await buildProgram(full).parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // Help and version were printed and are a success; anything else was already
      // reported through outputError (or, for a missing subcommand, as help on stderr).
      return e.code === 'commander.helpDisplayed' || e.code === 'commander.version' ? 0 : 2;
    }
    if (e instanceof ExitStatus) return e.exitCode;
    if (e instanceof CliError) return fail(e.code, e.message, e.exitCode);
    if (e instanceof ConfigError) return fail('invalid_config', e.message, 2);
    // serve/migrate failures: a domain error keeps its code, anything else is internal.
    const code = (e as { code?: unknown } | null)?.code;
    return fail(typeof code === 'string' && isErrorCode(code) ? code : 'internal', e instanceof Error ? e.message : String(e), 1);
  }
}

if (require.main === module) {
  runCli(process.argv.slice(2)).then(
    (code) => process.exit(code),
    () => process.exit(1),
  );
}
