/** The CLI's TLS to KeyAdmin (or, for `keyward check`, the authz port): its files checked, and the channel credentials. */
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import { check, CLIENT_TLS_VARIABLES, readSync, TlsFileError, type ClientTlsFiles } from './files';

/**
 * Reads and checks the CLI's files; throws TlsFileError. A client certificate needs
 * its key and the other way round.
 */
export function readClientTls(
  files: ClientTlsFiles,
  v: { ca: string; clientCert: string; clientKey: string } = CLIENT_TLS_VARIABLES,
): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  if ((files.clientCert === undefined) !== (files.clientKey === undefined)) {
    const [missing, given] = files.clientCert === undefined ? [v.clientCert, v.clientKey] : [v.clientKey, v.clientCert];
    throw new TlsFileError(missing, `must be set together with ${given}`);
  }
  const s = {
    ...(files.clientCert !== undefined && { cert: { path: files.clientCert, variable: v.clientCert } }),
    ...(files.clientKey !== undefined && { key: { path: files.clientKey, variable: v.clientKey } }),
    ...(files.ca !== undefined && { ca: { path: files.ca, variable: v.ca } }),
  };
  const m = check(s, { cert: s.cert && readSync(s.cert.path), key: s.key && readSync(s.key.path), ca: s.ca && readSync(s.ca.path) });
  return { ca: m.ca, cert: m.cert, key: m.key };
}

/** The CLI's channel credentials: TLS trusting `ca` (else the system roots), with a client certificate when given. */
export function clientChannelCredentials(
  files: ClientTlsFiles,
  variables: { ca: string; clientCert: string; clientKey: string } = CLIENT_TLS_VARIABLES,
): ChannelCredentials {
  const m = readClientTls(files, variables);
  return credentials.createSsl(m.ca ?? null, m.key ?? null, m.cert ?? null);
}
