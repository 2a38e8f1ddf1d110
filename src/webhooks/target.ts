/**
 * Where a webhook may point. Without KEYWARD_WEBHOOK_ALLOW_INSECURE: `https://` only, and
 * only to public addresses — checked when the URL is set (an IP literal, `localhost`)
 * and again at every delivery on the addresses the name resolves to (DNS rebinding):
 * the connection is made to the very address that was checked (./sender.ts).
 */
import { BlockList, isIP } from 'node:net';
import { InvalidArgumentError } from '../errors/domain';

export const URL_MAX = 2048;

/** Loopback, private, link-local, shared, documentation, multicast and reserved ranges. */
const NON_PUBLIC = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  NON_PUBLIC.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['64:ff9b::', 96],
  ['100::', 64],
  ['2001::', 23],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const)
  NON_PUBLIC.addSubnet(net, prefix, 'ipv6');

/** Whether `address` (an IP literal) is a public unicast address. */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return !NON_PUBLIC.check(address, 'ipv4');
  if (family !== 6) return false;
  const lower = address.toLowerCase();
  // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible forms: judge the IPv4 address.
  const mapped = /^::(ffff:)?(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (mapped) return isPublicAddress(mapped[2]!);
  if (/^::ffff:/.test(lower)) return false;
  return !NON_PUBLIC.check(lower, 'ipv6');
}

/** The URL's host without IPv6 brackets. */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[(.*)\]$/, '$1');
}

/** Validates a webhook URL as given to CreateWebhook / UpdateWebhook; `field` names it in the error. */
export function checkTargetUrl(text: string, allowInsecure: boolean, field = 'url'): string {
  const raw = text.trim();
  if (raw === '') throw new InvalidArgumentError(field, 'is required', 'required');
  if (raw.length > URL_MAX) throw new InvalidArgumentError(field, `must be at most ${URL_MAX} characters`, 'too_long');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new InvalidArgumentError(field, 'is not a URL', 'malformed');
  }
  if (url.protocol !== 'https:' && !(allowInsecure && url.protocol === 'http:'))
    throw new InvalidArgumentError(field, allowInsecure ? 'must be an http:// or https:// URL' : 'must be an https:// URL', 'insecure');
  if (url.username !== '' || url.password !== '') throw new InvalidArgumentError(field, 'must not contain user info', 'malformed');
  if (url.hash !== '') throw new InvalidArgumentError(field, 'must not contain a fragment', 'malformed');
  const host = hostOf(url);
  if (!allowInsecure) {
    const literal = isIP(host) !== 0;
    if ((literal && !isPublicAddress(host)) || (!literal && /(^|\.)localhost\.?$/i.test(host)) || (!literal && !host.includes('.')))
      throw new InvalidArgumentError(field, 'must point to a public address', 'private_address');
  }
  return url.toString();
}
