/** Sign-in: one credential (the admin token or an admin-scoped API key), never kept after the call. */
import { useState } from 'preact/hooks';
import { ApiError, signIn } from '../api';
import { Field, FormError, useAction } from '../components/forms';
import { signedIn } from '../session';

const LABEL = 'Admin token or admin-scoped API key';

export function SignInPage(props: { notice: string | null }) {
  const [credential, setCredential] = useState('');
  const action = useAction({ show401: true });
  const submit = async (e: Event) => {
    e.preventDefault();
    const value = credential;
    const session = await action.run(() => signIn(value));
    // Drop the credential from the page either way: it is not needed any more.
    setCredential('');
    if (session) signedIn(session);
  };
  // Every sign-in failure is told next to the one field, naming it.
  const e = action.error;
  const error = e && !e.field ? new ApiError(e.status, e.code, `${LABEL}: ${e.message}`, 'credential', e.violations) : e;
  return (
    <main class="signin" id="main">
      <form class="card" onSubmit={(e) => void submit(e)} data-testid="signin-form" noValidate>
        <h1>keyward console</h1>
        {props.notice && (
          <p class="notice notice-warn" role="alert" data-testid="signin-notice">
            {props.notice}
          </p>
        )}
        <Field
          id="signin-credential"
          name="credential"
          label={LABEL}
          type="password"
          autocomplete="off"
          spellcheck={false}
          required
          value={credential}
          onValue={setCredential}
          error={error}
          hint="The administrator token manages every organization; a key with the admin scope manages its own."
        />
        <FormError id="signin-error" error={error} fields={['credential']} />
        <button type="submit" class="primary" id="signin-submit" disabled={action.busy}>
          {action.busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
