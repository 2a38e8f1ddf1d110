/**
 * Reads one variable through its entry in the settings table: the NAME_FILE twin, the
 * default, the schema, and the one-line ConfigError naming the variable.
 */
import { readFileSync } from 'node:fs';
import { SETTINGS, type Setting, type SettingName } from './settings';
import type { z } from 'zod';

export type Env = Record<string, string | undefined>;

/** A configuration error: its message is the one line printed before exiting. */
export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = 'ConfigError';
  }
}

/** A variable's parsed value; `| undefined` when it has no default. */
export type Value<N extends SettingName> = (typeof SETTINGS)[N] extends { default: string }
  ? z.output<(typeof SETTINGS)[N]['schema']>
  : z.output<(typeof SETTINGS)[N]['schema']> | undefined;

/** A value as set: its text, and the variable it came from (NAME or NAME_FILE). */
export interface Given {
  text: string;
  variable: string;
  source: 'env' | 'file';
}

/**
 * The text set for `name`, if any. An empty value means unset (unless the entry says
 * `emptyIsValue`). With a file twin (`file: true`) the value may instead be in the
 * file NAME_FILE names (surrounding whitespace and the trailing newline dropped);
 * both set, an unreadable file or an empty file is an error naming the variable.
 */
export function givenText(env: Env, name: SettingName): Given | undefined {
  const setting: Setting = SETTINGS[name];
  const direct = env[name];
  if (!setting.file) {
    if (direct === undefined || (direct === '' && !setting.emptyIsValue)) return undefined;
    return { text: direct, variable: name, source: 'env' };
  }
  const file = env[`${name}_FILE`];
  if (direct !== undefined && direct !== '' && file !== undefined && file !== '') {
    throw new ConfigError(name, `set either ${name} or ${name}_FILE, not both`);
  }
  if (direct !== undefined && direct !== '') return { text: direct.trim(), variable: name, source: 'env' };
  if (file === undefined || file === '') return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (e) {
    throw new ConfigError(`${name}_FILE`, `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (text === '') throw new ConfigError(`${name}_FILE`, `${file} is empty`);
  return { text, variable: `${name}_FILE`, source: 'file' };
}

/**
 * Parses `text` with the entry's schema; a failure is a ConfigError naming `variable`,
 * quoting the text unless the entry says `echo: false`.
 */
export function parseText<N extends SettingName>(name: N, text: string, variable: string = name): z.output<(typeof SETTINGS)[N]['schema']> {
  const setting: Setting = SETTINGS[name];
  const result = setting.schema.safeParse(text);
  if (!result.success) {
    const problem = result.error.issues[0]?.message ?? 'invalid';
    throw new ConfigError(variable, setting.echo === false ? problem : `${problem} (got ${JSON.stringify(text)})`);
  }
  return result.data as z.output<(typeof SETTINGS)[N]['schema']>;
}

/** The value of `name` in `env`: as set, else its default, else undefined. */
export function read<N extends SettingName>(env: Env, name: N): Value<N> {
  const given = givenText(env, name);
  const setting: Setting = SETTINGS[name];
  if (given) return parseText(name, given.text, given.variable);
  if (setting.default === undefined) return undefined as Value<N>;
  return parseText(name, setting.default);
}
