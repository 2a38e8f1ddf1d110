/**
 * PostgreSQL only: other processes' KeyAdmin changes reach this process's key cache
 * through LISTEN/NOTIFY. While the listener cannot hear, cached keys live briefly.
 */
import type { Logger } from 'pino';
import type { KeyCache } from '../authz/cache';
import { ChangeListener } from '../store/change-listener';
import type { DataPlaneStore } from '../store/key-lookup';
import { CHANGES_CHANNEL } from '../store/store';
import { describeError } from '../util/logger';

export interface ChangeInvalidationDeps {
  /** The PostgreSQL URL the listener connects to. */
  url: string;
  cache: KeyCache;
  dataPlane: Pick<DataPlaneStore, 'hashesOf'>;
  /** KEYWARD_CACHE_TTL_UNNOTIFIED_SECONDS × 1000. */
  unnotifiedTtlMs: number;
  logger: Logger;
}

/** Starts the listener (the cache lives briefly until it hears); the caller stops it at close. */
export async function listenForChanges(deps: ChangeInvalidationDeps): Promise<ChangeListener> {
  const { cache, dataPlane, logger } = deps;
  cache.setTtl(deps.unnotifiedTtlMs);
  // Notifications name keys by id only; the cache is keyed by hash: one primary-key
  // query finds the hashes. Should it fail, or a key be gone, one pass over the cache.
  const invalidateKeysById = async (ids: string[]) => {
    let hashes = new Map<string, string>();
    try {
      hashes = await dataPlane.hashesOf(ids);
    } catch (e) {
      logger.warn({ err: describeError(e) }, 'change notification: key hashes could not be read; dropping the keys by id');
    }
    for (const [id, hash] of hashes) cache.invalidateKey(id, hash);
    const rest = ids.filter((id) => !hashes.has(id));
    if (rest.length > 0) cache.invalidateKeys(rest);
  };
  const listener = new ChangeListener({
    url: deps.url,
    channel: CHANGES_CHANNEL,
    onChanges: (list) => {
      for (const change of list) if (change.type === 'org') cache.invalidateOrg(change.id);
      const ids = list.filter((change) => change.type === 'key').map((change) => change.id);
      if (ids.length > 0) void invalidateKeysById(ids);
    },
    onState: (connected) => {
      if (connected) {
        cache.clear(); // anything announced while deaf is unknown
        cache.setTtl();
      } else {
        cache.setTtl(deps.unnotifiedTtlMs);
        logger.warn('change notifications lost; cached keys now live at most KEYWARD_CACHE_TTL_UNNOTIFIED_SECONDS until reconnected');
      }
    },
    onError: (e) => logger.warn({ err: describeError(e) }, 'change listener connection failed; reconnecting'),
  });
  await listener.start();
  return listener;
}
