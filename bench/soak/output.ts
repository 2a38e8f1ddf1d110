/** Formatting of the progress lines and the summary. */

export const mmss = (ms: number) => `${Math.floor(ms / 60_000)}:${String(Math.floor((ms % 60_000) / 1000)).padStart(2, '0')}`;
export const mb = (kb: number) => (kb / 1024).toFixed(1);
export const int = (n: number) => Math.round(n).toLocaleString('en-US');
export const pad = (s: string | number, w: number) => String(s).padStart(w);

export const COLUMNS = `${pad('time', 6)} ${pad('RSS MB', 7)} ${pad('heap MB', 7)} ${pad('lag p99/max ms', 15)} | Checks/s: ${pad('allow', 6)} ${pad('invalid', 7)} ${pad('unknown', 7)} ${pad('revoked', 7)} ${pad('limited', 7)} ${pad('(429)', 6)} | ${pad('admin/s', 7)} ${pad('ALS/s', 6)} | errors`;

export interface Sample {
  atMs: number;
  rssKb: number;
  heapMb: number;
  lagP99Ms: number;
  lagMaxMs: number;
}
