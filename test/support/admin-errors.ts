/** Assertions on KeyAdmin errors: gRPC status, keyward code (both carriers) and, for invalid_argument, the field. */
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { KeyAdminClient, ListOrganizationsRequest } from '../../src/gen/keyward/admin/v1/key_admin';
import { failure } from './harness';

export const DAY = 86_400_000;

export type KeywardError = Awaited<ReturnType<typeof failure>>;

/** Expects the call to fail with exactly this gRPC status and keyward code (both carriers). */
export async function expectError(call: Promise<unknown>, grpc: status, code: string): Promise<KeywardError> {
  const e = await failure(call);
  expect({ grpc: e.grpc, code: e.code, trailerCode: e.trailerCode, domain: e.info?.domain }).toEqual({
    grpc,
    code,
    trailerCode: code,
    domain: 'keyward',
  });
  if (code !== 'invalid_argument') expect(e.badRequest).toBeUndefined();
  return e;
}

/** Expects INVALID_ARGUMENT naming `field` in ErrorInfo.metadata and in the one BadRequest violation. */
export async function expectInvalid(call: Promise<unknown>, field: string): Promise<KeywardError> {
  const e = await expectError(call, status.INVALID_ARGUMENT, 'invalid_argument');
  expect(e.field).toBe(field);
  expect(e.info?.metadata.field).toBe(field);
  expect(e.badRequest?.fieldViolations.map((v) => v.field)).toEqual([field]);
  expect(e.badRequest?.fieldViolations[0]?.description).not.toBe('');
  return e;
}

/** A ListOrganizations call with a raw `authorization` value (or none). */
export function callWithAuthorization(port: number, authorization: string | undefined): Promise<unknown> {
  const raw = new KeyAdminClient(`127.0.0.1:${port}`, credentials.createInsecure());
  const md = new Metadata();
  if (authorization !== undefined) md.set('authorization', authorization);
  return new Promise((resolve, reject) => {
    raw.listOrganizations(ListOrganizationsRequest.fromPartial({}), md, (e: ServiceError | null, r) => {
      raw.close();
      if (e) reject(e);
      else resolve(r);
    });
  });
}
