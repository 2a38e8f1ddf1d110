/**
 * Usage cells: what the batcher keeps in memory instead of one event per request. A
 * cell sums every usage event of one (organization, key, endpoint, method, UTC hour);
 * the store adds cells to the daily and monthly aggregates. Cells are plain JSON
 * (the journal writes them as they are) and can be summed in any order.
 */
import { bucketOf, BUCKET_COUNT } from './histogram';
import type { UsageEvent } from './types';

export const HOUR_MS = 3_600_000;

export interface UsageCell {
  organizationId: string;
  keyId: string;
  endpoint: string;
  method: string;
  /** The hour's start, epoch ms (UTC). */
  hour: number;
  /** Usage events folded in (the batcher's counts of events written and dropped). */
  events: number;
  /** Allowed Checks: the count quotas and bills use. */
  requests: number;
  errors4xx: number;
  errors5xx: number;
  tokens: number;
  costUsd: number;
  durationCount: number;
  durationSumMs: number;
  /** The latency histogram (./histogram), present once a duration was added. */
  buckets?: number[];
}

/** The identity of an event's cell; NUL cannot occur in the stored strings. */
export function cellKey(organizationId: string, keyId: string, endpoint: string, method: string, hour: number): string {
  return `${organizationId}\u0000${keyId}\u0000${endpoint}\u0000${method}\u0000${hour}`;
}

/** The hour (epoch ms of its start) an epoch-ms time falls in. */
export function hourOf(atMs: number): number {
  return Math.floor(atMs / HOUR_MS) * HOUR_MS;
}

export function emptyCell(organizationId: string, keyId: string, endpoint: string, method: string, hour: number): UsageCell {
  return {
    organizationId,
    keyId,
    endpoint,
    method,
    hour,
    events: 0,
    requests: 0,
    errors4xx: 0,
    errors5xx: 0,
    tokens: 0,
    costUsd: 0,
    durationCount: 0,
    durationSumMs: 0,
  };
}

const finiteNonNegative = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/** Adds one event's numbers to its cell (values that could not be stored are left out). */
export function addEvent(cell: UsageCell, e: UsageEvent): void {
  cell.events++;
  if (e.requests === 1) cell.requests++;
  const status = e.statusCode;
  if (typeof status === 'number') {
    if (status >= 400 && status <= 499) cell.errors4xx++;
    else if (status >= 500 && status <= 599) cell.errors5xx++;
  }
  if (typeof e.tokens === 'number' && Number.isSafeInteger(e.tokens) && e.tokens >= 0) cell.tokens += e.tokens;
  if (finiteNonNegative(e.costUsd)) cell.costUsd += e.costUsd;
  if (finiteNonNegative(e.durationMs)) {
    cell.durationCount++;
    cell.durationSumMs += e.durationMs;
    (cell.buckets ??= new Array<number>(BUCKET_COUNT).fill(0))[bucketOf(e.durationMs)]!++;
  }
}

/** Adds `from`'s numbers into `into` (same identity). */
export function addCell(into: UsageCell, from: UsageCell): void {
  into.events += from.events;
  into.requests += from.requests;
  into.errors4xx += from.errors4xx;
  into.errors5xx += from.errors5xx;
  into.tokens += from.tokens;
  into.costUsd += from.costUsd;
  into.durationCount += from.durationCount;
  into.durationSumMs += from.durationSumMs;
  if (from.buckets) {
    const buckets = (into.buckets ??= new Array<number>(BUCKET_COUNT).fill(0));
    for (let i = 0; i < from.buckets.length && i < BUCKET_COUNT; i++) buckets[i]! += Number(from.buckets[i]) || 0;
  }
}

/** A map of cells by cellKey, summing what is added to it. */
export class CellMap {
  private readonly cells = new Map<string, UsageCell>();
  /** Each key's last cell: a key's Checks mostly land in the same cell, found without building its id. */
  private readonly lastOfKey = new Map<string, UsageCell>();

  get size(): number {
    return this.cells.size;
  }

  /** The cell of (organization, key, endpoint, method, hour), created when `create` allows. */
  cellFor(organizationId: string, keyId: string, endpoint: string, method: string, hour: number, create: boolean): UsageCell | undefined {
    const last = this.lastOfKey.get(keyId);
    if (
      last !== undefined &&
      last.hour === hour &&
      last.endpoint === endpoint &&
      last.method === method &&
      last.organizationId === organizationId
    )
      return last;
    const id = cellKey(organizationId, keyId, endpoint, method, hour);
    let cell = this.cells.get(id);
    if (!cell && create) this.cells.set(id, (cell = emptyCell(organizationId, keyId, endpoint, method, hour)));
    if (cell) this.lastOfKey.set(keyId, cell);
    return cell;
  }

  /** Sums a cell in (copying it when its identity is new here). */
  add(cell: UsageCell): void {
    const into = this.cellFor(cell.organizationId, cell.keyId, cell.endpoint, cell.method, cell.hour, true)!;
    addCell(into, cell);
  }

  values(): UsageCell[] {
    return [...this.cells.values()];
  }

  /** The events folded into every cell. */
  events(): number {
    let n = 0;
    for (const c of this.cells.values()) n += c.events;
    return n;
  }
}

/** The cells of a list of events. */
export function cellsOf(events: readonly UsageEvent[]): UsageCell[] {
  const map = new CellMap();
  for (const e of events) {
    const cell = map.cellFor(e.organizationId, e.keyId, e.endpoint, e.method, hourOf(e.at), true)!;
    addEvent(cell, e);
  }
  return map.values();
}

/** The events folded into a list of cells. */
export function eventsIn(cells: readonly UsageCell[]): number {
  let n = 0;
  for (const c of cells) n += c.events;
  return n;
}
