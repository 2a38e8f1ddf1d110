/** Check request bytes for many keys at once: one template, each key copied over it. */
import { CheckResponse } from '../../src/gen/envoy/service/auth/v3/external_auth';
import { generateKey } from '../../src/keys/format';
import { checkRequestBytes } from '../support/check-request';

/**
 * Every key has the same length, so every request has the same bytes but for the key:
 * encode once with a placeholder key and copy each key over it (encoding 1,000,000
 * requests one by one would take longer than the load). The parent checks on a sample
 * that the result equals checkRequestBytes(key).
 */
export function requestTemplate(keyLen: number): { bytes: Buffer; offset: number } {
  const placeholder = generateKey('live');
  if (placeholder.length !== keyLen) throw new Error(`keys are ${keyLen} characters, a new one is ${placeholder.length}`);
  const bytes = checkRequestBytes(placeholder);
  const offset = bytes.indexOf(placeholder, 0, 'latin1');
  if (offset < 0 || bytes.indexOf(placeholder, offset + 1, 'latin1') >= 0) throw new Error('the key must occur once in the request bytes');
  return { bytes, offset };
}

/**
 * All requests in one buffer, each a gRPC message frame (1 byte "not compressed", 4
 * bytes length, the CheckRequest) of `len` bytes, for keys packed `keyLen` bytes each in `keys`.
 */
export function buildRequests(keys: Uint8Array, keyLen: number): { blob: Buffer; len: number; count: number } {
  const { bytes, offset } = requestTemplate(keyLen);
  const src = Buffer.from(keys.buffer, keys.byteOffset, keys.byteLength);
  const count = src.length / keyLen;
  const frame = Buffer.alloc(5 + bytes.length);
  frame.writeUInt32BE(bytes.length, 1);
  bytes.copy(frame, 5);
  const len = frame.length;
  const blob = Buffer.allocUnsafe(count * len);
  for (let i = 0; i < count; i++) {
    frame.copy(blob, i * len);
    src.copy(blob, i * len + 5 + offset, i * keyLen, (i + 1) * keyLen);
  }
  return { blob, len, count };
}

/** Whether a CheckResponse (protobuf bytes) has ok_response (field 3), from its top-level tags only. */
export function hasOkResponse(b: Buffer, from: number): boolean {
  let i = from;
  const varint = (): number => {
    let v = 0;
    for (let shift = 0; i < b.length; shift += 7) {
      const c = b[i++]!;
      v += (c & 0x7f) * 2 ** shift;
      if (c < 0x80) break;
    }
    return v;
  };
  while (i < b.length) {
    const tag = varint();
    const wire = tag & 7;
    if (tag >>> 3 === 3) return true;
    if (wire === 2) {
      const n = varint();
      i += n;
    } else if (wire === 0) varint();
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else return false;
  }
  return false;
}

export function describe(r: CheckResponse): string {
  if (r.okResponse) return `allow (status ${r.status?.code ?? 0})`;
  if (r.deniedResponse)
    return `deny HTTP ${r.deniedResponse.status?.code} (status ${r.status?.code}${r.status?.message ? `: ${r.status.message}` : ''})`;
  return `status ${r.status?.code}`;
}
