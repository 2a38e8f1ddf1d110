/** Configuration test helpers. */
import { ConfigError, loadConfig } from '../../src/config';

/** The ConfigError loadConfig(env) throws; fails if it throws nothing or something else. */
export function configErrorOf(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a configuration error');
}
