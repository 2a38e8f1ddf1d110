/** The usage journal's lines, errors and numbers (./journal.ts). */
import type { UsageEvent } from './types';
import { cellsOf, eventsIn, type UsageCell } from './cells';
import type { EpochDelta } from './journal-epochs';
import type { SecurityCell } from '../events/security';

export class JournalLockedError extends Error {
  constructor(
    readonly dir: string,
    readonly pid: number,
  ) {
    super(`${dir} is in use by process ${pid}; each keyward process needs its own journal directory`);
  }
}

export class JournalFullError extends Error {
  constructor(readonly maxBytes: number) {
    super(`the usage journal holds its maximum of ${maxBytes} bytes`);
  }
}

/** A batch as the journal keeps it: summed cells and raw detail events, under the batch's id. */
export interface JournalBatch {
  id: string;
  cells: UsageCell[];
  events: UsageEvent[];
  security: SecurityCell[];
}

/** What append() takes: a batch's cells and raw detail events. */
export type JournalContent = EpochDelta;

/** The usage events a batch stands for (raw events are also summed in its cells). */
export const recordsOf = (batch: JournalContent): number => eventsIn(batch.cells);

export interface UsageJournalStats {
  /** Batches and events on disk waiting for replay. */
  pendingBatches: number;
  pendingEvents: number;
  /** Bytes on disk. */
  bytes: number;
  /** Events appended since start. */
  spilled: number;
  /** Events replayed into the store since start (not counting batches it already had). */
  replayed: number;
  /** Replayed batches the store already had (written before a crash). */
  duplicates: number;
  /** Unreadable lines skipped (a torn append). */
  corrupt: number;
}

/** One segment line, or undefined for a torn append. */
export function parseLine(line: string): JournalBatch | undefined {
  try {
    const v = JSON.parse(line) as Partial<JournalBatch>;
    if (typeof v.id !== 'string' || !Array.isArray(v.events)) return undefined;
    const security = Array.isArray(v.security) ? v.security : [];
    if (Array.isArray(v.cells)) return { id: v.id, cells: v.cells, events: v.events, security };
    // A line of the event-per-request format: its events summed, its detail events kept raw.
    return { id: v.id, cells: cellsOf(v.events), events: v.events.filter((e) => e.requests !== 1), security };
  } catch {
    // a torn append
  }
  return undefined;
}
