/** keyward's settings: the table (./settings.ts), loading and checking, and provisioning for `serve`. */
export { ConfigError } from './read';
export type { DatabaseConfig } from './schemas';
export { defaultAuthzConfig, loadAuthzClientConfig, loadClientConfig, loadConfig, parseDatabaseUrl, secretFileFor } from './load';
export { provision } from './provision';
export type { AuthzClientConfig, AuthzConfig, ClientConfig, Config, ConsoleConfig, LoadedConfig, TlsConfig, WebhookConfig } from './types';
