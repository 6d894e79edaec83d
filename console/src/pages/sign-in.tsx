/** Sign-in: the key is checked with `GET /api/me` before anything else is shown. */
import { useState } from "preact/hooks";
import { ErrorNotice } from "../components.tsx";

export function SignIn({
  onSignIn,
}: {
  onSignIn: (key: string, remember: boolean) => Promise<void>;
}) {
  const [key, setKey] = useState("");
  const [remember, setRemember] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await onSignIn(key.trim(), remember);
    } catch (caught) {
      setError(caught);
      setBusy(false);
    }
  };

  return (
    <main class="signin">
      <form class="card signin-card" onSubmit={submit}>
        <h1>
          <img src="./favicon.svg" alt="" width="32" height="32" /> image-hub
        </h1>
        <p class="muted">
          Sign in with an API key. An admin key sees everything; a client key sees its own images
          and usage.
        </p>
        <label for="signin-key">API key</label>
        <input
          id="signin-key"
          type="password"
          autocomplete="current-password"
          spellcheck={false}
          required
          value={key}
          onInput={(event) => setKey(event.currentTarget.value)}
        />
        <label class="check">
          <input
            type="checkbox"
            checked={remember}
            onChange={(event) => setRemember(event.currentTarget.checked)}
          />
          Stay signed in on this device
        </label>
        <ErrorNotice error={error} />
        <button type="submit" class="primary" disabled={busy || key.trim() === ""}>
          Sign in
        </button>
      </form>
    </main>
  );
}
