/** The access-log traffic: StreamAccessLogs streams on the authz port. */
import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import { RequestMethod } from '../../src/gen/envoy/config/core/v3/base';
import { StreamAccessLogsMessage } from '../../src/gen/envoy/service/accesslog/v3/als';
import { accessLogEntry } from '../support/access-log';
import { ALS_PATH, identity } from '../support/keyward';
import { ALS_MAX_ENTRIES_PER_MESSAGE, ALS_MESSAGES_PER_SECOND, ALS_STREAM_MS, OPT } from './options';
import { active, fail, grpcError, run, tally } from './state';
import { pick } from './checks';

export const ALS_PATHS: [RequestMethod, string][] = [
  [RequestMethod.POST, '/v1/chat/completions'],
  [RequestMethod.GET, '/v1/models'],
  [RequestMethod.POST, '/v1/agents/run'],
];

export function alsMessage(entries: number, first: boolean): Buffer {
  const start = new Date();
  const logEntry = Array.from({ length: entries }, () => {
    const k = pick(active);
    const roll = randomInt(100);
    const code = roll < 90 ? 200 : roll < 95 ? 429 : 503;
    const tokens = code === 200 ? 50 + randomInt(2000) : 0;
    const [method, path] = pick(ALS_PATHS);
    return accessLogEntry({
      keyId: k.id,
      orgId: k.orgId,
      start,
      method,
      path,
      code,
      ms: 5 + randomInt(1500),
      tokens,
      costUsd: tokens * 0.000002,
    });
  });
  return Buffer.from(
    StreamAccessLogsMessage.encode(
      StreamAccessLogsMessage.fromPartial({
        ...(first && { identifier: { node: { id: 'soak-envoy', cluster: 'soak' }, logName: 'keyward' } }),
        httpLogs: { logEntry },
      }),
    ).finish(),
  );
}

/** One stream: --als-rate entries a second in five messages a second, ended after ALS_STREAM_MS; resolves on keyward's answer. */
export function alsStream(client: Client): Promise<void> {
  return new Promise((resolve) => {
    let entries = 0;
    let blocked = false;
    let ended = false;
    const start = performance.now();
    const call = client.makeClientStreamRequest<Buffer, Buffer>(
      ALS_PATH,
      identity,
      identity,
      new Metadata(),
      { deadline: Date.now() + ALS_STREAM_MS + 30_000 },
      (e) => {
        clearInterval(timer);
        if (e) fail('als', `stream of ${entries} entries: ${grpcError(e)}`);
        else tally.als.ok += entries;
        resolve();
      },
    );
    const timer = setInterval(() => {
      if (ended) return;
      const elapsed = performance.now() - start;
      if (run.stopping || elapsed >= ALS_STREAM_MS) {
        ended = true;
        call.end();
        return;
      }
      if (blocked) return;
      const n = Math.min(ALS_MAX_ENTRIES_PER_MESSAGE, Math.floor((elapsed / 1000) * OPT.alsRate) - entries);
      if (n <= 0) return;
      const bytes = alsMessage(n, entries === 0);
      entries += n;
      tally.als.sent += n;
      if (!call.write(bytes)) {
        blocked = true;
        call.once('drain', () => (blocked = false));
      }
    }, 1000 / ALS_MESSAGES_PER_SECOND);
  });
}

export async function alsLoop(port: number): Promise<void> {
  if (OPT.alsRate === 0) return;
  const client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
  try {
    while (!run.stopping) await alsStream(client);
  } finally {
    client.close();
  }
}
