/**
 * The CLI's own errors and its strict option parsers. A parser that rejects a value
 * throws a UsageError naming the option; runCli prints it as
 * `error: invalid_argument: <message>` and exits 2. Range checks beyond what the wire
 * type can carry are left to the server.
 */
import { Option } from 'commander';
import { Environment } from '../gen/keyward/admin/v1/key_admin';

/** A failure to report as one line, `error: <code>: <message>`, with its exit code. */
export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Not a failure: the command printed its answer and exits with this status (e.g. 3, `keyward check` denied). */
export class ExitStatus extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
    this.name = 'ExitStatus';
  }
}

/** A bad command line: exit 2, code invalid_argument. */
export class UsageError extends CliError {
  constructor(message: string) {
    super('invalid_argument', message, 2);
    this.name = 'UsageError';
  }
}

export const UINT32_MAX = 0xffff_ffff;
export const INT32_MAX = 0x7fff_ffff;

/** A non-negative integer in decimal digits only (no sign, exponent, fraction or spaces). */
export function parseCount(value: string, option: string, max: number = UINT32_MAX): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`${option} must be a non-negative integer`);
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n > max) throw new UsageError(`${option} must be at most ${max}`);
  return n;
}

/** An option taking a non-negative integer, parsed strictly. */
export function countOption(flags: string, description: string, max: number = UINT32_MAX): Option {
  const option = new Option(flags, description);
  return option.argParser((v: string) => parseCount(v, option.long ?? flags, max));
}

export function parseEnvironment(value: string): Environment {
  if (value === 'live') return Environment.ENVIRONMENT_LIVE;
  if (value === 'test') return Environment.ENVIRONMENT_TEST;
  throw new UsageError('--env must be live or test');
}

export function parseBool(value: string, option: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new UsageError(`${option} must be true or false`);
}

/** `a,b , c` → ['a', 'b', 'c']; an empty string → [] (which clears scopes on update). */
export function parseScopes(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** Collects repeated `--metadata k=v` into a map; the value may be empty, the key not. */
export function collectMetadata(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new UsageError(`--metadata must be key=value, got ${JSON.stringify(value)}`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

/** An ISO 8601 date or date-time, e.g. 2030-01-31 or 2030-01-31T12:00:00Z. */
export function parseTime(value: string, option: string): Date {
  const d = new Date(value);
  if (!ISO_TIME.test(value) || Number.isNaN(d.getTime())) {
    throw new UsageError(`${option} must be an ISO 8601 time, e.g. 2030-01-31T12:00:00Z`);
  }
  return d;
}

/** An option whose value is parsed by `parse(value, '--flag')`. */
export function parsedOption<T>(flags: string, description: string, parse: (value: string, option: string) => T): Option {
  const option = new Option(flags, description);
  return option.argParser((v: string) => parse(v, option.long ?? flags));
}
