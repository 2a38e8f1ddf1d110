/**
 * The in-process half of bench/cold.ts's memory figure: keyward as `keyward serve`
 * runs it (startApp from dist/, the same configuration from KEYWARD_*, the same heap
 * cap, its gRPC ports open), driven by Checks issued inside the process instead of
 * over gRPC, so that every key can be checked within the limiter's 2-minute idle time
 * (the wire load on this machine cannot). Each Check goes through the real path from
 * request bytes on: decodeCheckAttributes (the server's decoder), then
 * Authorizer.authorize (hash, cache, store lookup on a miss, limiter, quota,
 * usage, last-used). The driver keeps no keys: the parent sends them in chunks.
 *
 * Plain CommonJS on purpose: no TypeScript loader (with its own thread and heap) in
 * the process whose RSS is read. Protocol (IPC, advanced serialization):
 *   parent → { type: 'chunk', keys: Uint8Array, keyLen, template: Uint8Array, offset, inflight }
 *   driver → { type: 'chunk-done', allowed, denied: {reason: n}, errors: n }
 *   parent → { type: 'measure', settleMs }   (waits for buffered usage and last-use times to be written first)
 *   driver → { type: 'measured', series: [{ atMs, rssKb, heapUsed, heapTotal }], rssKb, heapUsed, heapTotal, external, arrayBuffers, cacheSize, trackedWindows }
 * BENCH_HEAP_SNAPSHOT=<file> writes a heap snapshot after the measurement.
 */
'use strict';
const { readFileSync } = require('node:fs');
const { loadConfig } = require('../dist/config');
const { capHeapGrowth } = require('../dist/util/heap');
const { HEAP_CAP_ABOVE_BYTES } = require('../dist/main');
const { startApp } = require('../dist/app');
const { createLogger } = require('../dist/util/logger');
const { decodeCheckAttributes } = require('../dist/grpc/check-codec');

function rssKb() {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : NaN;
}

function outcome(res, tally) {
  if (res.okResponse) tally.allowed++;
  else {
    const what = `HTTP ${res.deniedResponse?.status?.code ?? '?'} (status ${res.status?.code})`;
    tally.denied[what] = (tally.denied[what] ?? 0) + 1;
  }
}

async function runChunk(app, m) {
  const tally = { allowed: 0, denied: {}, errors: 0 };
  const keys = Buffer.from(m.keys.buffer, m.keys.byteOffset, m.keys.byteLength);
  const template = Buffer.from(m.template);
  const count = keys.length / m.keyLen;
  let next = 0;
  const one = async () => {
    while (next < count) {
      const i = next++;
      const bytes = Buffer.from(template);
      keys.copy(bytes, m.offset, i * m.keyLen, (i + 1) * m.keyLen);
      try {
        const r = app.authorizer.authorize(decodeCheckAttributes(bytes));
        outcome((r instanceof Promise ? await r : r).response, tally);
      } catch {
        tally.errors++;
      }
      // Cached keys are decided synchronously: let timers and I/O (flushes) run.
      if ((i & 1023) === 0) await new Promise((r) => setImmediate(r));
    }
  };
  await Promise.all(Array.from({ length: Math.min(m.inflight, count) }, one));
  return tally;
}

async function main() {
  const config = loadConfig();
  capHeapGrowth({ percent: config.heapGrowingPercent, aboveBytes: HEAP_CAP_ABOVE_BYTES });
  const app = await startApp({ config, logger: createLogger(config.logLevel), migrate: false });
  process.on('message', async (m) => {
    if (m.type === 'chunk') {
      const t = await runChunk(app, m);
      process.send({ type: 'chunk-done', ...t });
    } else if (m.type === 'measure') {
      // The steady state: buffered usage and last-use times written (at most 2 minutes), then a pause.
      const until = Date.now() + 120_000;
      while (Date.now() < until) {
        const u = app.usage.stats();
        if (u.buffered + u.inFlight === 0 && app.lastUsed.size === 0) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      // RSS right after the writes, then every 5 s at rest for settleMs (V8 shrinks an idle heap).
      const series = [];
      for (let t = 0; ; t += 5000) {
        series.push({ atMs: t, rssKb: rssKb(), heapUsed: process.memoryUsage().heapUsed, heapTotal: process.memoryUsage().heapTotal });
        if (t >= m.settleMs) break;
        await new Promise((r) => setTimeout(r, 5000));
      }
      const u = process.memoryUsage();
      const lim = await app.limiter.stats();
      process.send({
        type: 'measured',
        series,
        rssKb: rssKb(),
        heapUsed: u.heapUsed,
        heapTotal: u.heapTotal,
        external: u.external,
        arrayBuffers: u.arrayBuffers,
        cacheSize: app.cache.size,
        trackedWindows: lim.trackedKeys,
      });
      // BENCH_HEAP_SNAPSHOT=<file>: a heap snapshot after the figures were read.
      if (process.env.BENCH_HEAP_SNAPSHOT) require('node:v8').writeHeapSnapshot(process.env.BENCH_HEAP_SNAPSHOT);
    } else if (m.type === 'stop') {
      await app.close(5000);
      process.exit(0);
    }
  });
  process.send({ type: 'ready', authzPort: app.authzPort, pid: process.pid });
}

main().catch((e) => {
  process.stderr.write(`memory driver: ${e && e.stack}\n`);
  process.exit(1);
});
