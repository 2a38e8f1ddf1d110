/**
 * Who is calling KeyAdmin: the administrator token (bootstrapped here) or an API key
 * with the `admin` scope. Failed authentications are throttled per peer host and audited.
 */
import type { Logger } from 'pino';
import type { Clock } from '../util/clock';
import { newId } from '../util/ids';
import { describeError } from '../util/logger';
import type { CredentialHasher } from '../keys/hash';
import { parseKey } from '../keys/format';
import { keyUsable } from '../keys/usable';
import { TooManyAuthFailuresError, UnauthenticatedError } from '../errors/domain';
import { AdminTokenRecord, type ApiKeyRecord } from '../store/entities';
import type { Store } from '../store/store';
import { peerHost, type AuthThrottle } from './auth-throttle';
import { auditEvent, type AuditTarget } from './context';
import { ROOT, orgPrincipal, type Principal } from './principal';

/** The scope that makes an API key an administrator of its own organization. */
export const ADMIN_SCOPE = 'admin';

export interface AuthenticatorDeps {
  store: Store;
  /** Hashes every new admin token, and is tried first when authenticating. */
  hasher: CredentialHasher;
  /**
   * While the hash secret is rotated (KEYWARD_HASH_SECRET_PREVIOUS): a credential not
   * found under `hasher` is tried under this one. A key found that way is reported to
   * onKeyFoundByPrevious (which rewrites its stored hash, batched); an admin token found
   * that way is rewritten here at once.
   */
  previousHasher?: CredentialHasher;
  onKeyFoundByPrevious?: (keyId: string, primaryHash: string, previousHash: string) => void;
  clock: Clock;
  logger: Logger;
  /** Brute-force throttling of failed authentications per peer host (none if absent). */
  authThrottle?: AuthThrottle;
}

export class Authenticator {
  private adminTokenHashes: string[] = [];
  /** An admin token's hash being rewritten with the primary secret (rotation). */
  private rehashing: Promise<void> | undefined;

  constructor(private readonly deps: AuthenticatorDeps) {}

  /**
   * Makes sure an administrator token exists. With `configured` (KEYWARD_ADMIN_TOKEN),
   * that token becomes the bootstrap token, replacing any earlier bootstrap token.
   * Without it, and with no token stored, a new token is generated and returned so
   * the caller can show it once; it is stored only as its keyed hash.
   */
  async bootstrapAdminToken(configured: string | undefined, generate: () => string): Promise<{ generated?: string }> {
    const { hasher, previousHasher } = this.deps;
    const system = { principal: ROOT, peer: 'system' };
    const result = await this.deps.store.transaction(async (repos) => {
      const tokens = await repos.adminTokens.all();
      const now = this.deps.clock.now();
      const bootstrapToken = (hash: string) =>
        Object.assign(new AdminTokenRecord(), {
          id: newId('adm', now.getTime()),
          tokenHash: hash,
          hashSecretId: hasher.id,
          label: 'bootstrap',
          createdAt: now,
        });
      if (configured !== undefined) {
        const hash = hasher.hash(configured);
        const current = tokens.find((t) => t.label === 'bootstrap' && t.tokenHash === hash);
        if (current) {
          if (current.hashSecretId !== hasher.id) current.hashSecretId = hasher.id;
          return {};
        }
        // The same token under the previous secret: rewrite its hash, keep the token.
        const oldHash = previousHasher?.hash(configured);
        const old = oldHash === undefined ? undefined : tokens.find((t) => t.label === 'bootstrap' && t.tokenHash === oldHash);
        if (old) {
          Object.assign(old, { tokenHash: hash, hashSecretId: hasher.id });
          return {};
        }
        for (const token of tokens.filter((t) => t.label === 'bootstrap')) repos.adminTokens.remove(token);
        repos.adminTokens.add(bootstrapToken(hash));
        repos.audit.append(auditEvent(now, system, 'admin_token.set', {}, 'success', 'from configuration'));
        return {};
      }
      if (tokens.length > 0) return {};
      const token = generate();
      repos.adminTokens.add(bootstrapToken(hasher.hash(token)));
      repos.audit.append(auditEvent(now, system, 'admin_token.generate', {}, 'success', null));
      return { generated: token };
    });
    await this.reloadAdminTokens();
    return result;
  }

  private async reloadAdminTokens(): Promise<void> {
    this.adminTokenHashes = (await this.deps.store.read((repos) => repos.adminTokens.all())).map((t) => t.tokenHash);
  }

  /**
   * Authenticates a bearer credential: the administrator token, or an API key with
   * the `admin` scope. Failures are audited and thrown as UnauthenticatedError; a peer
   * host blocked by the throttle gets TooManyAuthFailuresError without its credential
   * being looked at.
   */
  async authenticate(credential: string | undefined, peer: string): Promise<Principal> {
    const throttle = this.deps.authThrottle;
    if (!throttle) return this.authenticateCredential(credential, peer);
    const host = peerHost(peer);
    const now = this.deps.clock.now().getTime();
    const waitMs = throttle.blockedForMs(host, now);
    // A blocked peer's credential is not even looked at (nor audited again).
    if (waitMs > 0) throw new TooManyAuthFailuresError(Math.ceil(waitMs / 1000));
    try {
      const principal = await this.authenticateCredential(credential, peer);
      throttle.success(host);
      return principal;
    } catch (e) {
      if (e instanceof UnauthenticatedError && throttle.failure(host, now)) await this.auditAuthThrottled(peer);
      throw e;
    }
  }

  /**
   * authenticate() for a session that outlives the call (the web console): besides the
   * principal, a `recheck` that answers, on each later request, whether the credential
   * signed in with is still valid: the admin token still stored (not replaced), or the
   * API key still usable with the admin scope and its organization active. recheck
   * neither audits nor throttles, and holds no credential, only its keyed hashes.
   */
  async authenticateSession(
    credential: string | undefined,
    peer: string,
  ): Promise<{ principal: Principal; recheck: () => Promise<boolean> }> {
    const principal = await this.authenticate(credential, peer);
    if (principal.kind === 'org') {
      const keyId = principal.keyId;
      return {
        principal,
        recheck: async () => {
          const key = await this.deps.store.read((repos) => repos.keys.get(keyId));
          return key !== null && (await this.adminKeyRefusal(key)) === undefined;
        },
      };
    }
    const hashes = [this.deps.hasher.hash(credential!), ...(this.deps.previousHasher ? [this.deps.previousHasher.hash(credential!)] : [])];
    return {
      principal,
      recheck: async () => {
        await this.reloadAdminTokens();
        return this.adminTokenHashes.some((stored) => hashes.includes(stored));
      },
    };
  }

  private async authenticateCredential(credential: string | undefined, peer: string): Promise<Principal> {
    if (credential === undefined || credential === '') {
      await this.auditAuthFailure(peer, 'missing_credentials', {});
      throw new UnauthenticatedError('missing_credentials');
    }
    if (parseKey(credential).ok) {
      const key = await this.findKey(credential);
      const why = key ? await this.adminKeyRefusal(key) : 'key_not_found';
      if (why !== undefined || !key) {
        await this.auditAuthFailure(peer, why ?? 'key_not_found', key ? { organizationId: key.organizationId, keyId: key.id } : {});
        throw new UnauthenticatedError('invalid_credentials');
      }
      return orgPrincipal(key.organizationId, key.id);
    }
    if (this.matchesAdminToken(credential)) return ROOT;
    // Another process may have replaced the bootstrap token; look once more.
    await this.reloadAdminTokens();
    if (this.matchesAdminToken(credential)) return ROOT;
    await this.auditAuthFailure(peer, 'invalid_credentials', {});
    throw new UnauthenticatedError('invalid_credentials');
  }

  /**
   * Why an API key may not administer its organization (the audited reason), or
   * undefined. The rule is the Check's (keyUsable), with the admin scope checked after
   * revocation and expiry and before the organization.
   */
  private async adminKeyRefusal(key: ApiKeyRecord): Promise<string | undefined> {
    const hasScope = key.scopes.includes(ADMIN_SCOPE);
    // Without the scope the organization does not matter: it is not read.
    const org = hasScope ? await this.deps.store.read((repos) => repos.orgs.get(key.organizationId)) : undefined;
    const unusable = keyUsable(
      { revokedAt: key.revokedAt?.getTime() ?? null, expiresAt: key.expiresAt?.getTime() ?? null, disabled: !!key.disabledAt },
      org,
      this.deps.clock.now().getTime(),
    );
    if (unusable === 'revoked') return 'key_revoked';
    if (unusable === 'expired') return 'key_expired';
    if (unusable === 'disabled') return 'key_disabled';
    if (!hasScope) return 'missing_admin_scope';
    if (unusable === 'organization_inactive') return 'organization_inactive';
    return undefined;
  }

  /** An API key by its hash under the primary secret, else under the previous one (then reported for rehashing). */
  private async findKey(credential: string): Promise<ApiKeyRecord | null> {
    const hash = this.deps.hasher.hash(credential);
    const key = await this.deps.store.read((repos) => repos.keys.findByHash(hash));
    const previous = this.deps.previousHasher;
    if (key || !previous) return key;
    const old = await this.deps.store.read((repos) => repos.keys.findByHash(previous.hash(credential)));
    if (old) this.deps.onKeyFoundByPrevious?.(old.id, hash, old.keyHash);
    return old;
  }

  private matchesAdminToken(credential: string): boolean {
    let match = false;
    // Every stored hash is compared (no early exit).
    for (const hash of this.adminTokenHashes) match = this.deps.hasher.matches(credential, hash) || match;
    const previous = this.deps.previousHasher;
    if (match || !previous) return match;
    for (const hash of this.adminTokenHashes) match = previous.matches(credential, hash) || match;
    if (match) void this.rehashAdminToken(previous.hash(credential), this.deps.hasher.hash(credential));
    return match;
  }

  /** Rewrites an admin token's hash made with the previous secret; on failure the next authentication tries again. */
  private rehashAdminToken(from: string, to: string): Promise<void> {
    if (this.rehashing) return this.rehashing;
    const { store, hasher, logger } = this.deps;
    this.rehashing = store
      .transaction((repos) => repos.adminTokens.rehash(from, to, hasher.id))
      .then(
        (rewritten) => {
          this.adminTokenHashes = this.adminTokenHashes.map((hash) => (hash === from ? to : hash));
          if (rewritten > 0) logger.info({ hashSecretId: hasher.id }, 'hash secret rotation: admin token rehashed with the primary secret');
        },
        (e: unknown) => logger.warn({ err: describeError(e) }, 'hash secret rotation: rewriting the admin token hash failed; will retry'),
      )
      .finally(() => {
        this.rehashing = undefined;
      });
    return this.rehashing;
  }

  private async auditAuthThrottled(peer: string): Promise<void> {
    this.deps.logger.warn({ peer }, 'admin authentication throttled: too many failures from this address');
    await this.appendAnonymous(peer, 'admin.auth_throttled', {}, 'too_many_auth_failures');
  }

  private async auditAuthFailure(peer: string, why: string, target: AuditTarget): Promise<void> {
    this.deps.logger.warn({ peer, reason: why, orgId: target.organizationId, keyId: target.keyId }, 'admin authentication failed');
    await this.appendAnonymous(peer, 'admin.auth_failed', target, why);
  }

  /** A denial by an unauthenticated caller, in its own transaction. */
  private async appendAnonymous(peer: string, action: string, target: AuditTarget, reason: string): Promise<void> {
    await this.deps.store.transaction((repos) => {
      repos.audit.append({
        at: this.deps.clock.now(),
        actor: 'anonymous',
        action,
        organizationId: target.organizationId ?? null,
        keyId: target.keyId ?? null,
        outcome: 'denied',
        reason,
        peer,
      });
      return Promise.resolve();
    });
  }
}
