/** The command line and the fixed shape of the run: durations, pools, mix, secrets. */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CheckKind } from './state';

export const USAGE =
  'usage: npm run soak -- [--minutes N] [--rate CHECKS_PER_S] [--admin-rate CALLS_PER_S] [--als-rate ENTRIES_PER_S] [--interval S] [--sqlite] [--no-redis]';

export function options() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        minutes: { type: 'string', default: '10' },
        rate: { type: 'string', default: '300' },
        'admin-rate': { type: 'string', default: '4' },
        'als-rate': { type: 'string', default: '100' },
        interval: { type: 'string', default: '10' },
        sqlite: { type: 'boolean', default: false },
        'no-redis': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    console.error(`soak: ${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const num = (name: string, v: string, min: number, max: number): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
      console.error(`soak: --${name} must be a number from ${min} to ${max} (got ${JSON.stringify(v)})\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  return {
    minutes: num('minutes', values.minutes, 0.05, 1440),
    rate: num('rate', values.rate, 1, 20_000),
    adminRate: num('admin-rate', values['admin-rate'], 0, 100),
    alsRate: num('als-rate', values['als-rate'], 0, 50_000),
    interval: num('interval', values.interval, 1, 3600),
    sqlite: values.sqlite,
    redis: !values['no-redis'],
  };
}
export const OPT = options();

export const DURATION_MS = Math.round(OPT.minutes * 60_000);
/** RSS is judged from the end of the warm-up on. */
export const WARMUP_MS = Math.max(30_000, 0.2 * DURATION_MS);
export const RSS_LIMIT_PERCENT = 10;
export const RSS_SAMPLE_MS = 2000;
export const INTERVAL_MS = OPT.interval * 1000;
export const CHECK_TIMEOUT_MS = 5000;
export const ADMIN_TIMEOUT_MS = 10_000;
export const MAX_IN_FLIGHT = 1000;
export const CONNECTIONS = 2;
export const POOL_KEYS = 100;
export const REVOKED_AT_START = 20;
export const UNKNOWN_POOL = 50;
export const LIMITED_KEYS = 3;
export const LIMIT_PER_MINUTE = 20;
/** Keys of the churn organization the KeyAdmin traffic keeps between these counts. */
export const CHURN_MIN = 10;
export const CHURN_MAX = 40;
export const REVOKED_POOL_MAX = 200;
export const QUOTA = 1_000_000_000;
export const ALS_STREAM_MS = 15_000;
export const ALS_MESSAGES_PER_SECOND = 5;
export const ALS_MAX_ENTRIES_PER_MESSAGE = 1000;
/** Check kinds and their shares of --rate. */
export const CHECK_MIX: [CheckKind, number][] = [
  ['allow', 0.7],
  ['limited', 0.1],
  ['unknown', 0.08],
  ['invalid', 0.06],
  ['revoked', 0.06],
];

export const ROOT = join(__dirname, '..', '..');
export const PG_URL = process.env.KEYWARD_TEST_PG_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
export const DB_NAME = `keyward_soak_${randomBytes(4).toString('hex')}`;
export const ADMIN_TOKEN = `soak-admin-${randomBytes(16).toString('hex')}`;
export const HASH_SECRET = randomBytes(32).toString('hex');
export const SECRETS = [ADMIN_TOKEN, HASH_SECRET];
