/** The signed-in frame: header with who is signed in and sign-out, and the organization's tabs. */
import type { ComponentChildren } from 'preact';
import { signOut } from '../api';
import { href } from '../router';
import { signedOut } from '../session';
import type { Session } from '../types';

export function Layout(props: { session: Session; children: ComponentChildren }) {
  const s = props.session;
  const out = async () => {
    try {
      await signOut();
    } catch {
      // Signed out in the page either way; the server's session expires by itself.
    }
    signedOut('You have signed out.');
  };
  return (
    <>
      <header class="topbar">
        <a class="brand" href={s.kind === 'root' ? href('orgs') : href('orgs', s.organizationId ?? '')}>
          keyward console
        </a>
        <nav aria-label="Main">
          {s.kind === 'root' ? (
            <a href={href('orgs')} data-testid="nav-orgs">
              Organizations
            </a>
          ) : (
            <a href={href('orgs', s.organizationId ?? '')} data-testid="nav-own-org">
              My organization
            </a>
          )}
        </nav>
        <span class="who" data-testid="session-kind">
          {s.kind === 'root' ? 'Administrator' : `Organization ${s.organizationId ?? ''}`}
        </span>
        <button type="button" id="signout" onClick={() => void out()}>
          Sign out
        </button>
      </header>
      <main id="main">{props.children}</main>
    </>
  );
}

export type OrgTab = 'org' | 'keys' | 'usage' | 'audit';

export function OrgTabs(props: { orgId: string; current: OrgTab; name?: string }) {
  const tabs: [OrgTab, string, string][] = [
    ['org', 'Overview', href('orgs', props.orgId)],
    ['keys', 'Keys', href('orgs', props.orgId, 'keys')],
    ['usage', 'Usage', href('orgs', props.orgId, 'usage')],
    ['audit', 'Audit log', href('orgs', props.orgId, 'audit')],
  ];
  return (
    <nav class="tabs" aria-label="Organization">
      {tabs.map(([id, label, to]) => (
        <a key={id} href={to} aria-current={props.current === id ? 'page' : undefined} data-testid={`tab-${id}`}>
          {label}
        </a>
      ))}
    </nav>
  );
}
