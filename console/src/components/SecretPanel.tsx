/**
 * Shows a new key's secret once, in a modal dialog with a copy button. The secret lives
 * only in the caller's state: closing the dialog drops it, and it is never put in the URL
 * or any storage.
 */
import { useEffect, useRef, useState } from 'preact/hooks';

export function SecretPanel(props: { title: string; secret: string; onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  const [copied, setCopied] = useState<'idle' | 'copied' | 'failed'>('idle');
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
  }, []);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(props.secret);
      setCopied('copied');
    } catch {
      setCopied('failed');
    }
  };
  return (
    <dialog
      ref={ref}
      class="secret-dialog"
      aria-labelledby="secret-title"
      data-testid="secret-panel"
      onClose={props.onClose}
      onCancel={(e) => {
        e.preventDefault();
        props.onClose();
      }}
    >
      <h2 id="secret-title">{props.title}</h2>
      <p>
        Copy this key now. It is shown <strong>only once</strong> and cannot be displayed again.
      </p>
      <label for="secret-value">Secret</label>
      <input
        id="secret-value"
        data-testid="secret-value"
        class="secret"
        readOnly
        value={props.secret}
        onFocus={(e) => e.currentTarget.select()}
      />
      <div class="actions">
        <button type="button" id="secret-copy" onClick={() => void copy()}>
          Copy
        </button>
        <button type="button" id="secret-close" class="primary" onClick={props.onClose}>
          I have copied it, close
        </button>
      </div>
      {copied !== 'idle' && (
        <p role="status" data-testid="secret-copy-status">
          {copied === 'copied' ? 'Copied to the clipboard.' : 'Could not copy: select the secret and copy it by hand.'}
        </p>
      )}
    </dialog>
  );
}
