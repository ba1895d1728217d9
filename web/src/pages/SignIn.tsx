import { useState, type FormEvent } from "react";
import { ApiError, errorMessage } from "../api/errors";

const NOT_ACCEPTED = "That API key was not accepted. Check it and try again.";

interface Props {
  onSignIn: (key: string) => Promise<void>;
  /** Why the user is here again, e.g. the key stopped working. */
  message: string | null;
}

export function SignIn({ onSignIn, message }: Props) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const trimmed = key.trim();
    if (!trimmed) {
      setError("Enter your API key.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await onSignIn(trimmed);
    } catch (caught) {
      setError(
        caught instanceof ApiError && (caught.status === 401 || caught.status === 403)
          ? NOT_ACCEPTED
          : errorMessage(caught),
      );
      setBusy(false);
    }
  }

  return (
    <div className="sign-in">
      <h1 tabIndex={-1}>Sign in</h1>
      <p>Consensus Engine turns a rough idea into a reviewed decision. Sign in with your API key.</p>
      {message && !error && (
        <div className="note note-error" role="alert">
          {message}
        </div>
      )}
      <form onSubmit={submit} noValidate>
        <div className="field">
          <label htmlFor="api-key">API key</label>
          <p id="api-key-hint" className="hint">
            Kept in this browser tab only, until you sign out or close it.
          </p>
          <input
            id="api-key"
            type="password"
            autoComplete="off"
            spellCheck={false}
            value={key}
            aria-describedby="api-key-hint"
            aria-invalid={error ? true : undefined}
            onChange={(event) => setKey(event.target.value)}
          />
        </div>
        {error && (
          <div className="note note-error" role="alert">
            {error}
          </div>
        )}
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </div>
  );
}
