/**
 * The usage journal: an append-only file store on local disk for usage batches the
 * database could not take (KEYWARD_USAGE_JOURNAL_DIR). The batcher spills a batch here
 * when its write fails, and while the store is down; it replays the journal, oldest
 * first, once the store answers again.
 *
 * Contract:
 *  - append(id, batch) / appendSync(id, batch) resolve (return) only once the batch
 *    (its cells and raw events) is on disk (written and fdatasync'ed). A batch keeps the id it was first written
 *    with, and the store skips an id it has seen (usage_batches), so a batch that did
 *    reach the store before a crash is not counted again when replayed.
 *  - Files: `segment-<ms>-<n>.jsonl`, one JSON line per batch ({"id", "cells", "events"};
 *    a line without cells, from the event-per-request format, is read as its events
 *    summed). Beside them, the epoch files of the batches still in memory
 *    (./journal-epochs.ts): a crash leaves them, and opening the journal sums each into
 *    one batch appended to a segment.
 *    A segment is sealed when it reaches `segmentBytes` or when replay reaches it;
 *    appends then go to a new one. A replayed segment is deleted as a whole once every
 *    batch in it reached the store. A torn last line (a crash in the middle of an
 *    append) is skipped and counted in stats().corrupt.
 *  - The journal holds at most `maxBytes` on disk; an append beyond that throws
 *    JournalFullError (the batcher then keeps the batch in memory, where the buffer's
 *    drop policy applies).
 *  - One process per directory: a `LOCK` file holds the owner's pid. openDir() on a
 *    directory locked by a live process throws JournalLockedError; a stale lock (its
 *    process is gone) is taken over, and that process's segments are replayed.
 *  - openForProcess() (what `serve` uses) never shares: it creates the process's own
 *    `process-<pid>-<hex>` directory under the configured one and first takes over
 *    what dead processes left there, each exactly once (./journal-dirs.ts). A live
 *    process's directory is never taken. On close, an empty own directory is removed.
 *  - Memory: the pending batches are counted, not held; replay reads one segment at a
 *    time.
 */
import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  unlinkSync,
  write,
  writeSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { EpochFiles, epochLine, leftoverEpochs } from './journal-epochs';
import {
  JournalFullError,
  JournalLockedError,
  parseLine,
  recordsOf,
  type JournalBatch,
  type JournalContent,
  type UsageJournalStats,
} from './journal-format';

export { JournalFullError, JournalLockedError, type JournalBatch, type JournalContent, type UsageJournalStats } from './journal-format';
import { adoptLeftovers, alive, createProcessDir, lockOwner, releaseProcessDir, SEGMENT, segmentName, type Adopted } from './journal-dirs';

export interface UsageJournalOptions {
  dir: string;
  /** Most bytes on disk (KEYWARD_USAGE_JOURNAL_MAX_MB). */
  maxBytes: number;
  /** A segment is sealed at this size (default 16 MiB). */
  segmentBytes?: number;
}

interface Segment {
  name: string;
  bytes: number;
  /** Batches and events not yet replayed. */
  batches: number;
  events: number;
  /** Lines a replay already handled (an interrupted replay resumes after them). */
  doneLines: number;
}

const writeAsync = promisify(write);
const datasyncAsync = promisify(fdatasync);

export class UsageJournal {
  private readonly dir: string;
  private readonly maxBytes: number;
  private readonly segmentBytes: number;
  /** Sealed segments, oldest first, then the open one (if any) last. */
  private readonly segments: Segment[] = [];
  private readonly epochs: EpochFiles;
  private open: { seg: Segment; fd: number } | undefined;
  private counter = 0;
  private readonly counters = { spilled: 0, replayed: 0, duplicates: 0, corrupt: 0 };
  /** Appends run one at a time, in order. */
  private tail: Promise<void> = Promise.resolve();
  private closed = false;
  /** openForProcess(): the directory is this process's own, removed on close when empty. */
  private ownDir = false;
  private adoptedFrom: Adopted = { directories: 0, segments: 0 };

  private constructor(o: UsageJournalOptions) {
    this.dir = o.dir;
    this.maxBytes = o.maxBytes;
    this.segmentBytes = o.segmentBytes ?? 16 * 1024 * 1024;
    this.epochs = new EpochFiles(o.dir);
  }

  /** Creates the directory if needed, takes its lock and counts what is pending. */
  static openDir(o: UsageJournalOptions): UsageJournal {
    const j = new UsageJournal(o);
    mkdirSync(o.dir, { recursive: true, mode: 0o700 });
    j.lock();
    j.load();
    return j;
  }

  /**
   * Opens this process's own journal under `o.dir` (created if needed): a new
   * `process-<pid>-<hex>` directory, holding what dead processes left under `o.dir`.
   */
  static openForProcess(o: UsageJournalOptions): UsageJournal {
    mkdirSync(o.dir, { recursive: true, mode: 0o700 });
    const own = createProcessDir(o.dir);
    const j = new UsageJournal({ ...o, dir: own });
    j.ownDir = true;
    try {
      j.lock();
      j.adoptedFrom = adoptLeftovers(o.dir, own);
      j.load();
    } catch (e) {
      j.close();
      throw e;
    }
    return j;
  }

  /** This journal's directory (under the configured one, for openForProcess()). */
  get directory(): string {
    return this.dir;
  }

  /** What openForProcess() took over from dead processes. */
  get adopted(): Adopted {
    return { ...this.adoptedFrom };
  }

  private load(): void {
    for (const name of readdirSync(this.dir)
      .filter((n) => SEGMENT.test(n))
      .sort()) {
      const text = readFileSync(join(this.dir, name), 'utf8');
      const seg: Segment = { name, bytes: Buffer.byteLength(text), batches: 0, events: 0, doneLines: 0 };
      for (const line of text.split('\n')) {
        if (line === '') continue;
        const b = parseLine(line);
        if (b) {
          seg.batches++;
          seg.events += recordsOf(b);
        }
      }
      this.segments.push(seg);
    }
    // Epoch files a crashed process left: each summed into one batch under its id.
    for (const epoch of leftoverEpochs(this.dir)) {
      if (epoch.cells.length > 0 || epoch.events.length > 0 || epoch.security.length > 0) this.appendSync(epoch.id, epoch);
      unlinkSync(epoch.path);
    }
    this.seal();
  }

  private lock(): void {
    const path = join(this.dir, 'LOCK');
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(path, 'wx', 0o600);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        const pid = lockOwner(path);
        if (pid !== undefined && pid !== process.pid && alive(pid)) throw new JournalLockedError(this.dir, pid);
        unlinkSync(path); // stale
      }
    }
    throw new JournalLockedError(this.dir, -1);
  }

  stats(): UsageJournalStats {
    let batches = 0;
    let events = 0;
    let bytes = 0;
    for (const s of this.segments) {
      batches += s.batches;
      events += s.events;
      bytes += s.bytes;
    }
    return { pendingBatches: batches, pendingEvents: events, bytes, ...this.counters };
  }

  get pendingBatches(): number {
    let n = 0;
    for (const s of this.segments) n += s.batches;
    return n;
  }

  private line(id: string, batch: JournalContent): Buffer {
    return this.fits(Buffer.from(JSON.stringify({ id, cells: batch.cells, events: batch.events, security: batch.security ?? [] }) + '\n'));
  }

  /** `buf`, when the journal can take it on top of what it holds; else JournalFullError. */
  private fits(buf: Buffer): Buffer {
    let bytes = this.epochs.bytes;
    for (const s of this.segments) bytes += s.bytes;
    if (bytes + buf.length > this.maxBytes) throw new JournalFullError(this.maxBytes);
    return buf;
  }

  private target(size: number): { seg: Segment; fd: number } {
    if (this.open && this.open.seg.bytes > 0 && this.open.seg.bytes + size > this.segmentBytes) this.seal();
    if (!this.open) {
      // A fresh file: never append to a pending segment that happens to share the name.
      let name: string;
      let fd: number;
      for (;;) {
        name = segmentName(Date.now(), this.counter++);
        try {
          fd = openSync(join(this.dir, name), 'ax', 0o600);
          break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
      }
      const seg: Segment = { name, bytes: 0, batches: 0, events: 0, doneLines: 0 };
      this.segments.push(seg);
      this.open = { seg, fd };
    }
    return this.open;
  }

  private wrote(seg: Segment, bytes: number, events: number): void {
    seg.bytes += bytes;
    seg.batches++;
    seg.events += events;
    this.counters.spilled += events;
  }

  /** Appends one batch, durably; see the file comment. */
  append(id: string, batch: JournalContent): Promise<void> {
    return this.queue(async () => {
      const buf = this.line(id, batch);
      const { seg, fd } = this.target(buf.length);
      await writeAsync(fd, buf);
      await datasyncAsync(fd);
      this.wrote(seg, buf.length, recordsOf(batch));
    });
  }

  /** Runs `job` after the appends before it, one at a time. */
  private queue(job: () => Promise<void> | void): Promise<void> {
    const run = this.tail.then(() => {
      if (this.closed) throw new Error('the usage journal is closed');
      return job();
    });
    this.tail = run.catch(() => undefined);
    return run;
  }

  /**
   * Appends a delta of the batch the batcher will write under `epochId` to that batch's
   * epoch file, durably (./journal-epochs.ts). A crash then loses only what was summed
   * since the last delta.
   */
  appendEpoch(epochId: string, delta: JournalContent): Promise<void> {
    return this.queue(() => this.epochs.append(epochId, this.fits(epochLine(delta))));
  }

  /** Removes the epoch files of these batches: each is in the store or in a segment now. */
  dropEpochs(epochIds: readonly string[]): Promise<void> {
    return this.queue(() => {
      for (const id of epochIds) this.epochs.drop(id);
    });
  }

  /** dropEpochs(), synchronously (after appendSync() of their batch, at exit). */
  dropEpochsSync(epochIds: readonly string[]): void {
    for (const id of epochIds) this.epochs.drop(id);
  }

  /** append(), synchronously: for the last moments of a process. */
  appendSync(id: string, batch: JournalContent): void {
    if (this.closed) throw new Error('the usage journal is closed');
    const buf = this.line(id, batch);
    const { seg, fd } = this.target(buf.length);
    writeSync(fd, buf);
    fdatasyncSync(fd);
    this.wrote(seg, buf.length, recordsOf(batch));
  }

  private seal(): void {
    if (!this.open) return;
    closeSync(this.open.fd);
    if (this.open.seg.batches === 0) {
      unlinkSync(join(this.dir, this.open.seg.name));
      this.segments.splice(this.segments.indexOf(this.open.seg), 1);
    }
    this.open = undefined;
  }

  /**
   * Replays the journal, oldest batch first, through `write` (the store's idempotent
   * write: resolves false for a batch it already had). Stops at the first write that
   * throws and rethrows it; what was replayed stays replayed. Resolves with the
   * number of events replayed.
   */
  async replay(write: (batch: JournalBatch) => Promise<boolean>): Promise<number> {
    // Appends wait: replay works on sealed segments only, and one at a time.
    let events = 0;
    for (;;) {
      await this.tail;
      const seg = this.segments[0];
      if (!seg) return events;
      if (this.open?.seg === seg) this.seal();
      if (this.segments[0] !== seg) continue; // it was empty and is gone
      const path = join(this.dir, seg.name);
      const text = await readFile(path, 'utf8');
      const lines = text.split('\n');
      // Batches replayed in an earlier process that crashed are skipped by the store
      // (their ids are recorded); those of an interrupted pass in this one, here.
      for (let i = seg.doneLines; i < lines.length; i++) {
        const line = lines[i]!;
        if (line === '') continue;
        const batch = parseLine(line);
        if (!batch) {
          this.counters.corrupt++;
          seg.doneLines = i + 1;
          continue;
        }
        const fresh = await write(batch);
        if (fresh) {
          this.counters.replayed += recordsOf(batch);
          events += recordsOf(batch);
        } else this.counters.duplicates++;
        seg.batches--;
        seg.events -= recordsOf(batch);
        seg.doneLines = i + 1;
      }
      // In the same tick as the last batch's count: no one sees it pending-free yet on disk.
      unlinkSync(path);
      this.segments.shift();
    }
  }

  /**
   * Closes the open segment and releases the lock. Pending segments stay on disk (the
   * next process to start replays them); an empty own directory is removed.
   */
  close(): void {
    if (this.closed) return;
    this.seal();
    this.epochs.close();
    this.closed = true;
    try {
      const path = join(this.dir, 'LOCK');
      if (lockOwner(path) === process.pid) unlinkSync(path);
    } catch {
      // already gone
    }
    if (!this.ownDir) return;
    releaseProcessDir(this.dir);
    if (this.segments.length === 0) {
      try {
        rmdirSync(this.dir);
      } catch {
        // not empty: left for the next process
      }
    }
  }
}
