/**
 * Redis command deadlines survive event-loop stalls: a reply that arrived while the
 * loop was blocked past the deadline is still taken (no false timeout, no fallback),
 * and a command that is really unanswered still times out.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { CommandTimeoutError, withDeadline } from '../src/redis/deadline';
import { RedisRateLimiter } from '../src/limits/redis-limiter';
import { describeRedis, T0, testRedisUrl, uniqueKeyId } from './support/redis';

/** Blocks the event loop for `ms`. */
function stall(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    // busy
  }
}

describe('withDeadline', () => {
  // The echo runs in another process, as Redis does: its reply reaches the socket
  // while this process is stalled.
  let echo: ChildProcess;
  let port = 0;
  beforeAll(async () => {
    echo = spawn(process.execPath, [
      '-e',
      "const s=require('net').createServer(c=>c.on('data',d=>c.write(d))).listen(0,'127.0.0.1',()=>console.log(s.address().port))",
    ]);
    port = await new Promise<number>((resolve) => echo.stdout!.once('data', (d) => resolve(Number(String(d).trim()))));
  });
  afterAll(() => {
    echo.kill('SIGKILL');
  });

  it('takes a reply that arrived during a stall longer than the deadline', async () => {
    const client = connect(port, '127.0.0.1');
    await new Promise((r) => client.once('connect', r));
    const reply = new Promise<string>((resolve) => client.once('data', (d) => resolve(String(d))));
    client.write('pong');
    const p = withDeadline(reply, 50);
    stall(300); // the echo lands in the socket meanwhile; the 50 ms timer is overdue
    await expect(p).resolves.toBe('pong');
    client.destroy();
  });

  it('still times out what is never answered', async () => {
    await expect(withDeadline(new Promise(() => undefined), 30)).rejects.toBeInstanceOf(CommandTimeoutError);
  });

  it('passes a failure through', async () => {
    await expect(withDeadline(Promise.reject(new Error('boom')), 1000)).rejects.toThrow('boom');
  });
});

describeRedis('the Redis limiter under a stall', () => {
  it('decides through Redis, without a fallback, when the loop stalls past the command timeout', async () => {
    const l = new RedisRateLimiter({ url: testRedisUrl(), onFailure: 'deny', commandTimeoutMs: 50 });
    try {
      const key = uniqueKeyId();
      await l.consume(key, 10, T0 + 1000); // connected and scripts loaded
      for (let i = 0; i < 5; i++) {
        const p = l.consume(key, 10, T0 + 1000);
        stall(250);
        expect((await p).allowed).toBe(true);
      }
      expect(l.stats()).toMatchObject({ redisErrors: 0, fallbackDecisions: 0 });
    } finally {
      await l.close();
    }
  });
});
