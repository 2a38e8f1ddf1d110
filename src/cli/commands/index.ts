/**
 * The `keyward` commands. Client commands map their options one to one onto the
 * KeyAdmin request (an unset option leaves the optional field unset, so the server
 * applies its default) and print the reply as JSON (`--json`) or for humans.
 */
import type { Command } from 'commander';
import { auditCommand } from './audit';
import { checkCommand } from './check';
import { healthCommand } from './health';
import { keyCommands } from './key';
import { meteringCommands } from './metering';
import { orgCommands } from './org';
import { serverCommands } from './server';
import type { CliContext } from './shared';
import { webhookCommands } from './webhook';

export type { CliContext } from './shared';

/** Adds every command to `program`; configure `program` (output, exitOverride) first, as subcommands copy its settings. */
export function registerCommands(program: Command, ctx: CliContext): void {
  serverCommands(program);
  healthCommand(program, ctx);
  orgCommands(program, ctx);
  const key = keyCommands(program, ctx);
  meteringCommands(program, key, ctx);
  auditCommand(ctx, program);
  webhookCommands(program, ctx);
  checkCommand(program, ctx);
}
