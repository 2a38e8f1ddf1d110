/**
 * The journal's epoch files: `epoch-<batch id>.jsonl` holds what the batcher summed in
 * memory for the batch it will write under that id, appended as deltas every
 * KEYWARD_USAGE_JOURNAL_SYNC_MS (one JSON line `{"cells", "events"}` per sync). The
 * file is removed once its batch is in the store or in a journal segment. A file left
 * by a crash is summed into one batch under its id and moved into a segment when the
 * journal opens: the store then applies it at most once (a batch that had reached the
 * store is recognised by its id).
 */
import { closeSync, fdatasync, openSync, readdirSync, readFileSync, unlinkSync, write } from 'node:fs';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { CellMap, type UsageCell } from './cells';
import type { UsageEvent } from './types';
import { SecurityCellMap, type SecurityCell } from '../events/security';

export const EPOCH = /^epoch-([A-Za-z0-9_-]{1,32})\.jsonl$/;

export const epochName = (id: string) => `epoch-${id}.jsonl`;

const writeAsync = promisify(write);
const datasyncAsync = promisify(fdatasync);

export interface EpochDelta {
  cells: readonly UsageCell[];
  events: readonly UsageEvent[];
  security?: readonly SecurityCell[];
}

/** The epoch files of one journal directory that this process writes. */
export class EpochFiles {
  private readonly open = new Map<string, { fd: number; bytes: number }>();

  constructor(private readonly dir: string) {}

  /** Bytes in the open epoch files. */
  get bytes(): number {
    let n = 0;
    for (const f of this.open.values()) n += f.bytes;
    return n;
  }

  /** Appends one delta to epoch `id`'s file, durably (written and fdatasync'ed). */
  async append(id: string, line: Buffer): Promise<void> {
    let file = this.open.get(id);
    if (!file) {
      file = { fd: openSync(join(this.dir, epochName(id)), 'a', 0o600), bytes: 0 };
      this.open.set(id, file);
    }
    await writeAsync(file.fd, line);
    await datasyncAsync(file.fd);
    file.bytes += line.length;
  }

  /** Removes epoch `id`'s file (its batch is safe elsewhere). */
  drop(id: string): void {
    const file = this.open.get(id);
    if (file) {
      closeSync(file.fd);
      this.open.delete(id);
    }
    try {
      unlinkSync(join(this.dir, epochName(id)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }

  /** Closes the files, leaving them on disk (the next process recovers them). */
  close(): void {
    for (const f of this.open.values()) closeSync(f.fd);
    this.open.clear();
  }
}

/** One delta line. */
export function epochLine(delta: EpochDelta): Buffer {
  return Buffer.from(JSON.stringify({ cells: delta.cells, events: delta.events, security: delta.security ?? [] }) + '\n');
}

/**
 * The epoch files left in `dir` (by a process that is gone), each summed into one
 * batch: its id, cells and events, and the file's path (to remove once the batch is in
 * a segment). A torn last line is skipped.
 */
export function leftoverEpochs(
  dir: string,
): { id: string; path: string; cells: UsageCell[]; events: UsageEvent[]; security: SecurityCell[] }[] {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const match = EPOCH.exec(name);
    if (!match) continue;
    const path = join(dir, name);
    const cells = new CellMap();
    const events: UsageEvent[] = [];
    const security = new SecurityCellMap();
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      if (line === '') continue;
      try {
        const delta = JSON.parse(line) as Partial<EpochDelta>;
        for (const c of delta.cells ?? []) cells.add(c);
        events.push(...(delta.events ?? []));
        for (const c of delta.security ?? []) security.add(c);
      } catch {
        // a torn append
      }
    }
    out.push({ id: match[1]!, path, cells: cells.values(), events, security: security.values() });
  }
  return out;
}
