/**
 * TLS settings fail fast: a certificate without its key (and the reverse), a client CA
 * without either, unreadable, unparsable, cut-off or mismatched files each stop the
 * configuration with one line naming the variable and never quoting a key; the same
 * for the CLI's KEYWARD_ADMIN_TLS* settings; and `keyward serve` exits 2 with that line.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadClientConfig, loadConfig } from '../src/config';
import { createPki, writeCa, writePair } from './support/certs';

const HEX32 = 'ab'.repeat(32);
const BIN = join(__dirname, '..', 'dist', 'cli', 'main.js');

function configError(load: () => unknown): ConfigError {
  try {
    load();
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a configuration error');
}

describe('TLS configuration', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keyward-tls-config-'));
  const pki = createPki('config');
  const other = createPki('config-other');
  const good = writePair(dir, 'server', pki.server);
  const ca = writeCa(dir, 'ca', pki.ca);
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const garbage = file('garbage.pem', 'this is not PEM\n');
  const cutCert = file('cut.crt', pki.server.cert.slice(0, 200));
  const foreignKey = file('foreign.key', other.server.key);
  const certAsKey = file('cert-as-key.pem', pki.server.cert);
  const base = { KEYWARD_DATABASE_URL: `sqlite:${dir}/k.db`, KEYWARD_HASH_SECRET: HEX32 };
  const load = (env: Record<string, string>) => () => loadConfig({ ...base, ...env });

  it('reads the files of each port and leaves ports without them plaintext', () => {
    const c = loadConfig({
      ...base,
      KEYWARD_AUTHZ_TLS_CERT: good.cert,
      KEYWARD_AUTHZ_TLS_KEY: good.key,
      KEYWARD_ADMIN_TLS_CERT: good.cert,
      KEYWARD_ADMIN_TLS_KEY: good.key,
      KEYWARD_ADMIN_TLS_CLIENT_CA: ca,
      KEYWARD_TLS_RELOAD_SECONDS: '30',
    });
    expect(c.tls).toEqual({
      authz: { cert: good.cert, key: good.key },
      admin: { cert: good.cert, key: good.key, clientCa: ca },
      reloadSeconds: 30,
    });
    expect(loadConfig(base).tls).toEqual({ reloadSeconds: 10 });
  });

  describe.each(['AUTHZ', 'ADMIN', 'HTTP'])('KEYWARD_%s_TLS_*', (port) => {
    const v = (s: string) => `KEYWARD_${port}_TLS_${s}`;
    it.each([
      ['a certificate without its key', () => ({ [v('CERT')]: good.cert }), 'KEY', 'must be set together with'],
      ['a key without its certificate', () => ({ [v('KEY')]: good.key }), 'CERT', 'must be set together with'],
      ['a client CA without certificate and key', () => ({ [v('CLIENT_CA')]: ca }), 'CLIENT_CA', 'needs'],
      ['a missing certificate file', () => ({ [v('CERT')]: join(dir, 'nope.crt'), [v('KEY')]: good.key }), 'CERT', 'cannot read'],
      ['a missing key file', () => ({ [v('CERT')]: good.cert, [v('KEY')]: join(dir, 'nope.key') }), 'KEY', 'cannot read'],
      ['a certificate that is not PEM', () => ({ [v('CERT')]: garbage, [v('KEY')]: good.key }), 'CERT', 'no PEM certificate'],
      ['a cut-off certificate', () => ({ [v('CERT')]: cutCert, [v('KEY')]: good.key }), 'CERT', 'PEM'],
      ['a key that is not PEM', () => ({ [v('CERT')]: good.cert, [v('KEY')]: garbage }), 'KEY', 'no PEM private key'],
      ['a certificate given as the key', () => ({ [v('CERT')]: good.cert, [v('KEY')]: certAsKey }), 'KEY', 'no PEM private key'],
      [
        'the key of another certificate',
        () => ({ [v('CERT')]: good.cert, [v('KEY')]: foreignKey }),
        'KEY',
        `is not the private key of the certificate in ${v('CERT')}`,
      ],
      [
        'a client CA that is not PEM',
        () => ({ [v('CERT')]: good.cert, [v('KEY')]: good.key, [v('CLIENT_CA')]: garbage }),
        'CLIENT_CA',
        'no PEM certificate',
      ],
      [
        'an unreadable client CA',
        () => ({ [v('CERT')]: good.cert, [v('KEY')]: good.key, [v('CLIENT_CA')]: dir }),
        'CLIENT_CA',
        'cannot read',
      ],
    ])('rejects %s, naming the variable', (_what, env, variable, problem) => {
      const e = configError(load(env()));
      expect(e.variable).toBe(v(variable));
      expect(e.message.startsWith(`${v(variable)}: `)).toBe(true);
      expect(e.message).toContain(problem);
      expect(e.message).not.toContain('\n');
      expect(e.message).not.toContain('-----');
      expect(e.message).not.toContain(pki.server.key.split('\n')[1]!.slice(0, 32));
    });
  });

  it('rejects a reload interval out of range', () => {
    expect(configError(load({ KEYWARD_TLS_RELOAD_SECONDS: '0' })).variable).toBe('KEYWARD_TLS_RELOAD_SECONDS');
  });

  describe('the CLI (KEYWARD_ADMIN_TLS*)', () => {
    const client = writePair(dir, 'client', pki.client);
    it('is plaintext unless asked, TLS with system roots with KEYWARD_ADMIN_TLS=true, and reads its files', () => {
      expect(loadClientConfig({}).adminTls).toBeUndefined();
      expect(loadClientConfig({ KEYWARD_ADMIN_TLS: 'true' }).adminTls).toEqual({});
      expect(
        loadClientConfig({
          KEYWARD_ADMIN_TLS_CA: ca,
          KEYWARD_ADMIN_TLS_CLIENT_CERT: client.cert,
          KEYWARD_ADMIN_TLS_CLIENT_KEY: client.key,
          KEYWARD_ADMIN_TLS_SERVER_NAME: 'keyward.internal',
        }).adminTls,
      ).toEqual({
        ca,
        clientCert: client.cert,
        clientKey: client.key,
        serverName: 'keyward.internal',
      });
    });

    it.each([
      [{ KEYWARD_ADMIN_TLS_CLIENT_CERT: 'CERT' }, 'KEYWARD_ADMIN_TLS_CLIENT_KEY'],
      [{ KEYWARD_ADMIN_TLS_CLIENT_KEY: 'KEY' }, 'KEYWARD_ADMIN_TLS_CLIENT_CERT'],
      [{ KEYWARD_ADMIN_TLS: 'false', KEYWARD_ADMIN_TLS_CA: 'CA' }, 'KEYWARD_ADMIN_TLS'],
      [{ KEYWARD_ADMIN_TLS: 'perhaps' }, 'KEYWARD_ADMIN_TLS'],
      [{ KEYWARD_ADMIN_TLS_CA: 'GARBAGE' }, 'KEYWARD_ADMIN_TLS_CA'],
      [{ KEYWARD_ADMIN_TLS_CA: 'MISSING' }, 'KEYWARD_ADMIN_TLS_CA'],
      [{ KEYWARD_ADMIN_TLS_CLIENT_CERT: 'CERT', KEYWARD_ADMIN_TLS_CLIENT_KEY: 'FOREIGN' }, 'KEYWARD_ADMIN_TLS_CLIENT_KEY'],
      [{ KEYWARD_ADMIN_TLS: 'true', KEYWARD_ADMIN_TLS_SERVER_NAME: 'not a name' }, 'KEYWARD_ADMIN_TLS_SERVER_NAME'],
    ])('rejects %j naming %s', (env, variable) => {
      const paths: Record<string, string> = {
        CERT: client.cert,
        KEY: client.key,
        CA: ca,
        GARBAGE: garbage,
        MISSING: join(dir, 'missing.pem'),
        FOREIGN: foreignKey,
      };
      const resolved = Object.fromEntries(Object.entries(env).map(([k, val]) => [k, paths[val] ?? val]));
      const e = configError(() => loadClientConfig(resolved));
      expect(e.variable).toBe(variable);
      expect(e.message).not.toContain('\n');
    });
  });

  it('stops `keyward serve` with one line naming the variable, without key material', () => {
    for (const [env, variable] of [
      [{ KEYWARD_HTTP_TLS_CERT: join(dir, 'nope.crt'), KEYWARD_HTTP_TLS_KEY: good.key }, 'KEYWARD_HTTP_TLS_CERT'],
      [{ KEYWARD_AUTHZ_TLS_CERT: good.cert, KEYWARD_AUTHZ_TLS_KEY: foreignKey }, 'KEYWARD_AUTHZ_TLS_KEY'],
    ] as const) {
      const r = spawnSync(process.execPath, [BIN, 'serve'], {
        env: {
          PATH: process.env.PATH,
          KEYWARD_DATABASE_URL: `sqlite:${dir}/serve.db`,
          KEYWARD_ADMIN_LISTEN: '127.0.0.1:0',
          KEYWARD_AUTHZ_LISTEN: '127.0.0.1:0',
          KEYWARD_HTTP_LISTEN: '127.0.0.1:0',
          KEYWARD_CONSOLE_LISTEN: '127.0.0.1:0',
          ...env,
        },
        encoding: 'utf8',
        timeout: 20000,
      });
      expect(r.status).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^keyward: configuration error: ${variable}: `));
      expect(r.stderr + r.stdout).not.toContain('PRIVATE KEY');
      expect(r.stderr + r.stdout).not.toContain(other.server.key.split('\n')[1]!.slice(0, 32));
    }
  });
});
