/** Everything spawned is killed on exit or on a signal. */
import { type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { type ServerProcess } from '../../test/support/server-process';

/** keyward and its directory, for the cleanup. */
export const state = { keyward: undefined as ServerProcess | undefined, tmp: undefined as string | undefined };
export const children = new Set<ChildProcess>();
export function cleanup(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (state.keyward && state.keyward.proc.exitCode === null) state.keyward.proc.kill('SIGKILL');
  if (state.tmp) rmSync(state.tmp, { recursive: true, force: true });
  state.tmp = undefined;
}
process.on('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
  process.on(s, () => {
    cleanup();
    process.exit(130);
  });

export function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.on('exit', () => children.delete(c));
  return c;
}
