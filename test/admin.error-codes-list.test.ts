/**
 * The list of admin error codes in proto/keyward/admin/v1/key_admin.proto (the header
 * comment "The codes and their gRPC statuses") names exactly the codes of the error
 * table (src/errors/codes.ts) that a KeyAdmin RPC can return — every code but the
 * data-plane-only Check denials — each with the gRPC status the table gives it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { ERROR_TABLE, type DenyCode } from '../src/errors/codes';

/** Check denials no admin RPC returns (service_unavailable and organization_inactive are shared). */
const CHECK_ONLY: readonly DenyCode[] = [
  'missing_api_key',
  'invalid_api_key',
  'ambiguous_credentials',
  'revoked_api_key',
  'expired_api_key',
  'disabled_api_key',
  'insufficient_scope',
  'rate_limit_exceeded',
  'monthly_quota_exceeded',
];

/** Codes of the web console's HTTP API only (src/console/), never of a KeyAdmin RPC. */
const CONSOLE_ONLY: readonly string[] = ['csrf_token_invalid'];

/** The [code, STATUS] pairs of the proto's list. */
function protoList(): [string, string][] {
  const text = readFileSync(join(__dirname, '..', 'proto', 'keyward', 'admin', 'v1', 'key_admin.proto'), 'utf8');
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.startsWith('// The codes and their gRPC statuses:'));
  expect(start).toBeGreaterThan(0);
  const out: [string, string][] = [];
  for (const line of lines.slice(start + 1)) {
    const m = /^\/\/ {3}([a-z_]+) +([A-Z_]+)\b/.exec(line);
    if (!m) break;
    out.push([m[1]!, m[2]!]);
  }
  return out;
}

describe('the proto lists every admin error code', () => {
  it('names each code of the error table an admin RPC can return, once, with its gRPC status', () => {
    const listed = protoList();
    const names = listed.map(([code]) => code);
    expect(new Set(names).size).toBe(names.length);
    const expected = Object.keys(ERROR_TABLE).filter(
      (code) => !(CHECK_ONLY as readonly string[]).includes(code) && !CONSOLE_ONLY.includes(code),
    );
    expect([...names].sort()).toEqual([...expected].sort());
    for (const [code, grpc] of listed) {
      expect([code, status[grpc as keyof typeof status]]).toEqual([code, ERROR_TABLE[code as keyof typeof ERROR_TABLE].grpc]);
    }
  });

  it('includes the codes it once lacked', () => {
    expect(protoList().map(([code]) => code)).toEqual(
      expect.arrayContaining(['service_unavailable', 'too_many_auth_failures', 'metadata_too_large', 'organization_deleted']),
    );
  });
});
