/** What every client command shares: the context, --json output, paging. */
import { Command, Option } from 'commander';
import { countOption, INT32_MAX } from '../options';

/** Where a command reads its environment and writes its output. */
export interface CliContext {
  env: Record<string, string | undefined>;
  /** Writes to stdout. */
  write(text: string): void;
  /** Standard input (`keyward check --key-stdin`); default process.stdin. */
  stdin?: AsyncIterable<string | Buffer>;
}

export interface JsonOption {
  json?: boolean;
}

/** A leaf command: every one takes --json. */
export function leaf(parent: Command, nameAndArgs: string, description: string): Command {
  return parent.command(nameAndArgs).description(description).option('--json', 'print one JSON document instead of text');
}

export function output(ctx: CliContext, opts: JsonOption, json: () => unknown, human: () => string): void {
  ctx.write(opts.json ? `${JSON.stringify(json(), null, 2)}\n` : human());
}

export interface Page<T> {
  items: T[];
  next: string;
}

/** One page from `pageToken`, or with `all` every page from there on. */
export async function pages<T>(pageToken: string, all: boolean, fetch: (token: string) => Promise<Page<T>>): Promise<Page<T>> {
  const items: T[] = [];
  let token = pageToken;
  for (;;) {
    const page = await fetch(token);
    items.push(...page.items);
    if (!all || page.next === '' || page.next === token) return { items, next: all ? '' : page.next };
    token = page.next;
  }
}

export function listText(noun: string, count: number, tableText: () => string, next: string): string {
  let text = count === 0 ? `No ${noun} found.\n` : tableText();
  if (next !== '') text += `\nMore results: repeat with --page-token ${next} (or use --all).\n`;
  return text;
}

export const limitOption = () => countOption('--limit <n>', 'page size (server default 50, at most 1000)', INT32_MAX);
export const pageTokenOption = () => new Option('--page-token <token>', 'continue from a previous page');
export const allOption = () => new Option('--all', 'follow next-page tokens and list everything');
