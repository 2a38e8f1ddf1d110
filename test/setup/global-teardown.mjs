import { rmSync } from 'node:fs';

export default async function globalTeardown() {
  // The skip summary reporter removes it; this is for runs that ended before it.
  if (process.env.KEYWARD_TEST_SKIP_DIR) rmSync(process.env.KEYWARD_TEST_SKIP_DIR, { recursive: true, force: true });
  const embedded = globalThis.__KEYWARD_EMBEDDED_PG__;
  if (!embedded) return;
  await embedded.server.stop().catch(() => undefined);
  rmSync(embedded.dir, { recursive: true, force: true });
}
