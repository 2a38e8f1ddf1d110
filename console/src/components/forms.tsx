/**
 * Form building blocks: a labelled field with its error next to it (role=alert), a
 * form-level error for everything the fields do not name, and a hook running an action
 * with busy and error state.
 */
import type { ComponentChildren, InputHTMLAttributes } from 'preact';
import { useCallback, useState } from 'preact/hooks';
import { ApiError, sessionEnded } from '../api';
import { parseWhole } from '../format';

/** Field names compare without case and underscores: `rate_limit_per_minute` = `rateLimitPerMinute`. */
export function sameField(a: string | undefined, b: string): boolean {
  if (!a) return false;
  const n = (s: string) => s.replace(/[_\s-]/g, '').toLowerCase();
  return n(a) === n(b) || n(a).startsWith(n(b) + '[') || n(a).startsWith(n(b) + '.');
}

export interface Action {
  busy: boolean;
  error: ApiError | null;
  setError(e: ApiError | null): void;
  run<T>(fn: () => Promise<T>): Promise<T | undefined>;
}

export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  return new ApiError(0, 'client_error', e instanceof Error ? e.message : String(e));
}

/**
 * Runs an action; an ended session is left to the session handler (back to sign-in),
 * except where that answer is the result itself (signing in).
 */
export function useAction(opts: { show401?: boolean } = {}): Action {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const run = useCallback(
    async <T,>(fn: () => Promise<T>): Promise<T | undefined> => {
      setBusy(true);
      setError(null);
      try {
        return await fn();
      } catch (e) {
        const err = toApiError(e);
        if (!sessionEnded(err) || opts.show401) setError(err);
        return undefined;
      } finally {
        setBusy(false);
      }
    },
    [opts.show401],
  );
  return { busy, error, setError, run };
}

interface FieldProps {
  id: string;
  type?: 'text' | 'password' | 'datetime-local' | 'month';
  required?: boolean;
  autocomplete?: string;
  spellcheck?: boolean;
  inputMode?: 'numeric' | 'text';
  list?: string;
  /**
   * The request field this input fills, to match the server's `error.field`. Not the
   * input's name attribute: inputs have none, so that no native form submission could
   * ever carry a value (a credential) into a URL.
   */
  name: string;
  label: string;
  value: string;
  onValue: (v: string) => void;
  hint?: string;
  error?: ApiError | null;
}

export function Field({ id, name, label, value, onValue, hint, error, ...rest }: FieldProps) {
  const fieldError = error && sameField(error.field, name) ? error : null;
  const describedBy = [hint ? `${id}-hint` : '', fieldError ? `${id}-error` : ''].filter(Boolean).join(' ') || undefined;
  return (
    <div class={fieldError ? 'field field-invalid' : 'field'}>
      <label for={id}>{label}</label>
      <input
        {...({
          type: rest.type ?? 'text',
          required: rest.required,
          autocomplete: rest.autocomplete,
          spellcheck: rest.spellcheck,
          inputMode: rest.inputMode,
          list: rest.list,
        } as InputHTMLAttributes<HTMLInputElement>)}
        id={id}
        value={value}
        onInput={(e) => onValue(e.currentTarget.value)}
        aria-invalid={fieldError ? 'true' : undefined}
        aria-describedby={describedBy}
      />
      {hint && (
        <small id={`${id}-hint`} class="hint">
          {hint}
        </small>
      )}
      {fieldError && (
        <p id={`${id}-error`} class="field-error" role="alert" data-testid={`${id}-error`}>
          {fieldError.message}
        </p>
      )}
    </div>
  );
}

export function Checkbox(props: { id: string; label: string; checked: boolean; onChange: (v: boolean) => void }) {
  return (
    <div class="field field-check">
      <input id={props.id} type="checkbox" checked={props.checked} onChange={(e) => props.onChange(e.currentTarget.checked)} />
      <label for={props.id}>{props.label}</label>
    </div>
  );
}

/** The error when no field of the form is named by it. */
export function FormError(props: { id: string; error: ApiError | null; fields: string[] }) {
  const e = props.error;
  if (!e || props.fields.some((f) => sameField(e.field, f))) return null;
  return (
    <p class="form-error" role="alert" id={props.id} data-testid={props.id} data-code={e.code}>
      {e.message}
      {e.field ? ` (${e.field})` : ''}
    </p>
  );
}

export function Notice(props: { children: ComponentChildren; testid?: string }) {
  return (
    <p class="notice" role="status" data-testid={props.testid}>
      {props.children}
    </p>
  );
}

/** A full-page error for a failed load (e.g. another organization's page: permission denied). */
export function LoadError(props: { error: ApiError | null }) {
  if (!props.error) return null;
  return (
    <div class="load-error" role="alert" data-testid="load-error" data-code={props.error.code}>
      <strong>{props.error.status === 404 ? 'Not found' : props.error.status === 403 ? 'Not allowed' : 'Error'}:</strong>{' '}
      {props.error.message} <code>{props.error.code}</code>
    </div>
  );
}

/**
 * Copies whole-number fields into a request body (empty ones are left out, so the
 * server's default applies); a value that is not a whole number is an error on its field.
 */
export function putWholeNumbers(body: Record<string, unknown>, entries: [key: string, field: string, value: string][]): void {
  for (const [key, field, value] of entries) {
    const n = parseWhole(value);
    if (n === undefined) continue;
    if (Number.isNaN(n)) throw new ApiError(400, 'invalid_argument', 'Enter a whole number.', field);
    body[key] = n;
  }
}
