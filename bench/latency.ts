/**
 * Latency under a fixed rate (open loop): keyward, the floor server and the no-op
 * ext_authz server, each driven at 25 %, 50 % and 75 % of the no-op's closed-loop
 * capacity by a generator that sends on schedule whatever the answers do and measures
 * from the intended send time (bench/latency/generator.ts, a forked child). Prints, per
 * load and server, the achieved rate and p50/p90/p99/p99.9/max; keyward's and the
 * floor's p99 and p99.9 over the no-op's against the targets; and each server's GC
 * pauses and V8 heap bytes allocated per allowed Check in the measured window (from
 * `--trace-gc-nvp`, bench/latency/gc-trace.ts). Run through `npm run bench`
 * (BENCH_ONLY=latency); knobs are BENCH_LATENCY_* (bench/latency/settings.ts).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { CHECK_PATH, logLines } from './support/keyward';
import { cleanup, state, track } from './run/processes';
import { fmtRps, h2load, sh } from './run/helpers';
import type { GeneratorResult, GeneratorRun } from './latency/generator';
import { calibrateAllocated } from './latency/gc-trace';
import { startServers, type Target } from './latency/servers';
import { type RunResult, gcTable, latencyTable, ratioTable, ratios, resultJson, verdict, warnings } from './latency/report';
import {
  CAPACITY,
  CAPACITY_SECONDS,
  CONNECTIONS,
  DRAIN_SECONDS,
  GC_LEVEL,
  KEYS,
  LEVELS,
  SECONDS,
  TARGET_LEVELS,
  TARGET_P99,
  TARGET_P999,
  WARMUP,
} from './latency/settings';
import { runMain } from './support/run-main';

function runGenerator(child: ChildProcess, run: GeneratorRun): Promise<GeneratorResult> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`the generator exited (${code})`));
    child.once('exit', onExit);
    child.once('message', (m: { ok: true; result: GeneratorResult } | { ok: false; error: string }) => {
      child.off('exit', onExit);
      if (m.ok) resolve(m.result);
      else reject(new Error(`generator: ${m.error}`));
    });
    child.send(run);
  });
}

async function main(): Promise<void> {
  const cpuModel = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? '?';
  console.log('# keyward latency under a fixed rate (open loop)');
  console.log(`machine: ${sh('nproc', [])} CPUs, ${cpuModel}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`);
  console.log(`node ${process.version}, ${sh('h2load', ['--version'])}, date ${new Date().toISOString()}`);
  console.log(
    `per run: ${WARMUP}s warm-up then ${SECONDS}s measured at a fixed rate, ${CONNECTIONS} HTTP/2 connections, ${KEYS} keys in turn; generator, servers and this process share the CPUs`,
  );
  const cal = calibrateAllocated();
  console.log(
    `V8 'allocated=' check: ${cal.perArray.toFixed(1)} B counted per ${cal.expectedPerArray} B array (heap bytes since the previous GC), ${cal.perKbBuffer.toFixed(0)} B per 1,000-byte Buffer (contents off-heap, not counted)`,
  );
  const t0 = Date.now();
  state.tmp = mkdtempSync(join(tmpdir(), 'keyward-latency-'));
  const { targets, frames, notes } = await startServers(state.tmp);
  for (const n of notes) console.log(n);

  // Capacity: the no-op, closed loop.
  const noop = targets.find((t) => t.name === 'noop')!;
  let capacity = CAPACITY;
  if (capacity === undefined) {
    const file = join(state.tmp, 'request.bin');
    writeFileSync(file, Buffer.from(frames[0]!, 'base64'));
    const h = await h2load(noop.port, file, 16, 16, CAPACITY_SECONDS, 2);
    capacity = h.reqPerSec;
    console.log(
      `no-op capacity: ${fmtRps(capacity)} req/s (h2load -t1 -c16 -m16, ${CAPACITY_SECONDS}s after 2s warm-up, ${CHECK_PATH}; ${h.failed + h.errored} failed)`,
    );
  } else console.log(`no-op capacity: ${fmtRps(capacity)} req/s (BENCH_LATENCY_CAPACITY, not measured)`);
  console.log('');

  const generator = track(fork(join(__dirname, 'latency', 'generator.ts'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const runs: RunResult[] = [];
  const run = async (level: number, target: Target): Promise<RunResult> => {
    const rate = Math.max(1, Math.round((capacity * level) / 100));
    process.stdout.write(`${String(level).padStart(3)} % ${fmtRps(rate).padStart(7)}/s ${target.name.padEnd(8)}`);
    const gen = await runGenerator(generator, {
      port: target.port,
      frames,
      rate,
      connections: CONNECTIONS,
      warmupSeconds: WARMUP,
      seconds: SECONDS,
      drainSeconds: DRAIN_SECONDS,
    });
    // Collections that ended inside the measured window; their lines arrive within ms.
    await new Promise((r) => setTimeout(r, 200));
    const gc = target.gc.summarize(gen.windowStartMs, gen.windowEndMs);
    const allowedPerSecond = gen.allowedInWindow / SECONDS;
    const bytesPerCheck = gc.allocatedPerSecond === undefined || !allowedPerSecond ? undefined : gc.allocatedPerSecond / allowedPerSecond;
    const r: RunResult = { level, rate, server: target.name, gen, gc, bytesPerCheck };
    console.log(
      ` achieved ${fmtRps(gen.achievedRate)}/s  p50 ${gen.latency.p50Ms.toFixed(2)}  p99 ${gen.latency.p99Ms.toFixed(2)}  p99.9 ${gen.latency.p999Ms.toFixed(2)}  max ${gen.latency.maxMs.toFixed(2)} ms  GCs ${gc.count} (${gc.totalPauseMs.toFixed(1)} ms)`,
    );
    for (const w of warnings(r)) console.log(`      WARNING: ${w}`);
    return r;
  };
  for (const level of LEVELS) for (const target of targets) runs.push(await run(level, target));
  generator.kill('SIGTERM');

  console.log('');
  console.log(`## Latency at a fixed rate (ms from the intended send time; load in % of the no-op's ${fmtRps(capacity)} req/s)`);
  console.log(latencyTable(runs));
  console.log('');
  console.log(`## keyward and the floor over the no-op (targets at ${TARGET_LEVELS.join(' % and ')} %)`);
  const rs = ratios(runs, LEVELS);
  console.log(ratioTable(rs));
  console.log('');
  console.log(`## GC in the measured window (* the ${GC_LEVEL} % run); V8 heap bytes allocated per allowed Check`);
  console.log(gcTable(runs));
  console.log('');
  for (const r of rs.filter((x) => x.met !== undefined))
    console.log(
      `target at ${r.level} %: keyward p99 ${r.p99.toFixed(2)}× the no-op's (≤ ${TARGET_P99}×), p99.9 ${r.p999.toFixed(2)}× (≤ ${TARGET_P999}×): ${verdict(r)}`,
    );
  const lagged = runs.filter((r) => warnings(r).length > 0);
  console.log(
    lagged.length
      ? `${lagged.length} of ${runs.length} runs had warnings (above): their figures are suspect`
      : `every run kept its rate (generator lag ≤ ${Math.max(...runs.map((r) => r.gen.lag.maxMs)).toFixed(1)} ms), every Check answered and allowed`,
  );
  const logs = logLines(state.keyward!.stdout());
  console.log(`keyward wrote ${logs.lines.length} log lines, ${logs.warnings.length} at warn or above`);
  console.log(
    `BENCH_RESULT ${JSON.stringify(resultJson(capacity, runs, rs, { warmup: WARMUP, connections: CONNECTIONS, keys: KEYS, gcLevel: GC_LEVEL, allocatedCheck: cal }))}`,
  );
  console.log(`total ${((Date.now() - t0) / 1000).toFixed(0)}s`);
  await state.keyward!.stop('SIGTERM');
}

runMain(main, cleanup, () => state.keyward?.stderr());
