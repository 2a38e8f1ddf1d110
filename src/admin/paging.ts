/**
 * Keyset paging: page tokens are opaque (base64url JSON of the last row's cursor);
 * page_size 0 means DEFAULT_PAGE_SIZE, 1..MAX_PAGE_SIZE is accepted. A list's cursor
 * is either a string (an id) or a number (an audit event id); a token whose cursor
 * has the other type was not issued for that list and is rejected.
 */
import { InvalidArgumentError } from '../errors/domain';

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;

export interface PageRequest {
  pageSize: number;
  pageToken: string;
}

export function pageSize(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > MAX_PAGE_SIZE) {
    throw new InvalidArgumentError('page_size', `must be between 0 and ${MAX_PAGE_SIZE}`, 'out_of_range');
  }
  return n === 0 ? DEFAULT_PAGE_SIZE : n;
}

export type CursorKind = 'string' | 'number';

/** One page of a list and the token of the next one ('' on the last page). */
export interface PageOf<T> {
  rows: T[];
  nextPageToken: string;
}

export function decodeToken(token: string, kind: CursorKind): string | number | undefined {
  if (token === '') return undefined;
  try {
    if (token.length > 200) throw new Error('too long');
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { c?: unknown };
    if (kind === 'string' && typeof parsed.c === 'string') return parsed.c;
    if (kind === 'number' && typeof parsed.c === 'number' && Number.isSafeInteger(parsed.c)) return parsed.c;
  } catch {
    // fall through
  }
  throw new InvalidArgumentError('page_token', 'is not a token this server issued', 'invalid_token');
}

export function encodeToken(cursor: string | number): string {
  return Buffer.from(JSON.stringify({ c: cursor }), 'utf8').toString('base64url');
}

/**
 * Fetches one row more than asked to learn whether another page exists, and returns
 * the page with its next token.
 */
export async function paged<T>(
  req: PageRequest,
  kind: CursorKind,
  cursorOf: (row: T) => string | number,
  fetch: (after: string | number | undefined, limit: number) => Promise<T[]>,
): Promise<PageOf<T>> {
  const size = pageSize(req.pageSize);
  const after = decodeToken(req.pageToken, kind);
  const rows = await fetch(after, size + 1);
  if (rows.length <= size) return { rows, nextPageToken: '' };
  const page = rows.slice(0, size);
  return { rows: page, nextPageToken: encodeToken(cursorOf(page[page.length - 1]!)) };
}
