/** The keyward web console: sign-in, then hash-routed pages. */
import { render } from 'preact';
import { useEffect } from 'preact/hooks';
import { getSession } from './api';
import { Layout } from './components/Layout';
import { LoadError, toApiError } from './components/forms';
import { AuditPage } from './pages/Audit';
import { KeyPage } from './pages/Key';
import { KeysPage } from './pages/Keys';
import { OrgPage } from './pages/Org';
import { OrgsPage } from './pages/Orgs';
import { SignInPage } from './pages/SignIn';
import { UsagePage } from './pages/Usage';
import { href, navigate, useRoute } from './router';
import { signedIn, signedOut, useSession } from './session';
import type { Session } from './types';
import { useState } from 'preact/hooks';

function Pages(props: { session: Session }) {
  const route = useRoute();
  const s = props.session;
  const home = s.kind === 'root' ? href('orgs') : href('orgs', s.organizationId ?? '');
  const redirect = route.page === 'home' || (route.page === 'orgs' && s.kind !== 'root');
  useEffect(() => {
    if (redirect) navigate(home);
  }, [redirect, home]);
  switch (route.page) {
    case 'orgs':
      return s.kind === 'root' ? <OrgsPage /> : null;
    case 'org':
      return <OrgPage key={route.orgId} orgId={route.orgId} session={s} />;
    case 'keys':
      return <KeysPage key={route.orgId} orgId={route.orgId} />;
    case 'usage':
      return <UsagePage key={route.orgId} orgId={route.orgId} />;
    case 'audit':
      return <AuditPage key={route.orgId} orgId={route.orgId} />;
    case 'key':
      return <KeyPage key={route.keyId} keyId={route.keyId} />;
    default:
      return null;
  }
}

function App() {
  const { session, notice } = useSession();
  const [error, setError] = useState<ReturnType<typeof toApiError> | null>(null);
  useEffect(() => {
    getSession().then(
      (s) => (s ? signedIn(s) : signedOut()),
      (e) => setError(toApiError(e)),
    );
  }, []);
  if (error) return <LoadError error={error} />;
  if (session === undefined)
    return (
      <p class="loading" role="status">
        Loading…
      </p>
    );
  if (session === null) return <SignInPage notice={notice} />;
  return (
    <Layout session={session}>
      <Pages session={session} />
    </Layout>
  );
}

render(<App />, document.getElementById('app')!);
