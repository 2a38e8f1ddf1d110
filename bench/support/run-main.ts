/**
 * How a benchmark script ends: exit 0 after `main` and `cleanup`; on a failure, print
 * it (with the tail of keyward's stderr when `stderrOf` gives one), clean up, exit 1.
 */
export function runMain(main: () => Promise<void>, cleanup: () => void, stderrOf?: () => string | undefined): void {
  main().then(
    () => {
      cleanup();
      process.exit(0);
    },
    (e: unknown) => {
      console.error(`bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      const stderr = stderrOf?.();
      if (stderr) console.error(stderr.slice(-2000));
      cleanup();
      process.exit(1);
    },
  );
}
