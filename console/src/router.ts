/** Hash routes: #/orgs, #/orgs/<id>, #/orgs/<id>/keys|usage|audit, #/keys/<id>. */
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { page: 'orgs' }
  | { page: 'org'; orgId: string }
  | { page: 'keys'; orgId: string }
  | { page: 'usage'; orgId: string }
  | { page: 'audit'; orgId: string }
  | { page: 'key'; keyId: string }
  | { page: 'home' };

export function parseHash(hash: string): Route {
  const parts = hash
    .replace(/^#\/?/, '')
    .split('/')
    .filter((p) => p !== '')
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    });
  const [a, b, c] = parts;
  if (a === 'orgs' && b === undefined) return { page: 'orgs' };
  if (a === 'orgs' && b !== undefined && c === undefined) return { page: 'org', orgId: b };
  if (a === 'orgs' && b !== undefined && (c === 'keys' || c === 'usage' || c === 'audit') && parts.length === 3)
    return { page: c, orgId: b };
  if (a === 'keys' && b !== undefined && c === undefined) return { page: 'key', keyId: b };
  return { page: 'home' };
}

export function href(...parts: string[]): string {
  return '#/' + parts.map(encodeURIComponent).join('/');
}

export function navigate(to: string): void {
  if (location.hash !== to) location.hash = to;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseHash(location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}
