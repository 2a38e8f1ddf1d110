/**
 * The usage journal's layout on disk: one directory per process under the configured
 * one, and the hand-over of what dead processes left (see ./journal.ts).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { EPOCH } from './journal-epochs';

/** A segment file: `segment-<ms>-<n>.jsonl`, ordered by name. */
export const SEGMENT = /^segment-(\d{13})-(\d{6})\.jsonl$/;

/** A process's directory: `process-<pid>-<8 hex>`; the pid says whether its owner lives. */
export const PROCESS_DIR = /^process-(\d+)-[0-9a-f]{8}$/;

export function segmentName(ms: number, n: number): string {
  return `segment-${String(ms).padStart(13, '0')}-${String(n % 1_000_000).padStart(6, '0')}.jsonl`;
}

/** Whether process `pid` exists (EPERM: it does, under another user). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid a LOCK file names, or undefined when it is unreadable or absent. */
export function lockOwner(lockPath: string): number | undefined {
  try {
    const pid = Number.parseInt(readFileSync(lockPath, 'utf8'), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Directories of journals open in this process (a same-pid directory not here is a dead process's). */
const openHere = new Set<string>();

/** Creates this process's directory under `root` (which exists) and returns its path. */
export function createProcessDir(root: string): string {
  for (;;) {
    const path = join(root, `process-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      mkdirSync(path, { mode: 0o700 });
      openHere.add(path);
      return path;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
}

/** The journal in `path` (from createProcessDir) is closed: a later one in this process may take it over. */
export function releaseProcessDir(path: string): void {
  openHere.delete(path);
}

export interface Adopted {
  /** Directories of dead processes taken over. */
  directories: number;
  /** Segment files moved into this process's directory. */
  segments: number;
}

/**
 * Moves into `own` (this process's directory) what dead processes left under `root`:
 *  - each `process-<pid>-*` directory whose process is gone, claimed by renaming it
 *    into `own` (atomic: of two processes starting together, one rename succeeds and
 *    the other finds nothing), then emptied into `own` and removed;
 *  - segments written directly in `root` (the one-directory layout), unless `root`'s
 *    LOCK names a live process, each claimed by its own rename.
 * A directory left inside `own` by a crash in the middle of this is emptied too, by
 * whoever claims `own` next.
 */
export function adoptLeftovers(root: string, own: string): Adopted {
  const adopted: Adopted = { directories: 0, segments: 0 };
  const ownName = basename(own);
  for (const name of readdirSync(root)) {
    const match = PROCESS_DIR.exec(name);
    if (!match || name === ownName) continue;
    const pid = Number(match[1]);
    if (pid === process.pid ? openHere.has(join(root, name)) : alive(pid)) continue;
    try {
      renameSync(join(root, name), join(own, name));
    } catch {
      continue; // claimed by another process meanwhile
    }
    adopted.directories++;
  }
  const rootOwner = lockOwner(join(root, 'LOCK'));
  if (rootOwner === undefined || rootOwner === process.pid || !alive(rootOwner)) adopted.segments += moveSegments(root, own);
  for (const name of readdirSync(own)) {
    const path = join(own, name);
    if (!PROCESS_DIR.test(name) || !statSync(path).isDirectory()) continue;
    adopted.segments += flatten(path, own);
  }
  return adopted;
}

/** Moves the segments in `from` and in the process directories nested in it into `to`, then removes `from`. */
function flatten(from: string, to: string): number {
  let moved = moveSegments(from, to);
  for (const name of readdirSync(from)) {
    const path = join(from, name);
    if (PROCESS_DIR.test(name) && statSync(path).isDirectory()) moved += flatten(path, to);
  }
  rmSync(from, { recursive: true, force: true });
  return moved;
}

/**
 * Renames every segment of `from` into `to` under a name free there, and every epoch
 * file (named by a unique batch id); returns how many segments moved.
 */
function moveSegments(from: string, to: string): number {
  let moved = 0;
  for (const name of readdirSync(from).filter((n) => EPOCH.test(n))) {
    try {
      if (!existsSync(join(to, name))) renameSync(join(from, name), join(to, name));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  for (const name of readdirSync(from)
    .filter((n) => SEGMENT.test(n))
    .sort()) {
    const [, ms, n] = SEGMENT.exec(name)!;
    let target = name;
    for (let k = 1; existsSync(join(to, target)); k++) target = segmentName(Number(ms), Number(n) + k);
    try {
      renameSync(join(from, name), join(to, target));
      moved++;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; // ENOENT: another process took it
    }
  }
  return moved;
}
