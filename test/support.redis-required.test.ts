/** KEYWARD_REQUIRE_REDIS, read by test/support/redis.ts: 1 and true require Redis; a typo is an error, not a skip. */
import { redisRequired } from './support/redis';

describe('KEYWARD_REQUIRE_REDIS', () => {
  it.each(['1', 'true', 'TRUE', ' True '])('%j requires Redis', (value) => {
    expect(redisRequired({ KEYWARD_REQUIRE_REDIS: value })).toBe(true);
  });

  it.each([undefined, '', '0', 'false', 'False'])('%j does not', (value) => {
    expect(redisRequired({ KEYWARD_REQUIRE_REDIS: value })).toBe(false);
  });

  it.each(['yes', '2', 'on'])('%j is refused, naming the variable', (value) => {
    expect(() => redisRequired({ KEYWARD_REQUIRE_REDIS: value })).toThrow(/^KEYWARD_REQUIRE_REDIS must be 1, true, 0 or false/);
  });
});
