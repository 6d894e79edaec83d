/** The form that creates a key; the page shows the secret the API answers with. */
import { useState } from "preact/hooks";
import { ErrorNotice } from "../components.tsx";
import type { Session } from "../session.ts";
import { KeyFields } from "./key-fields.tsx";
import { createBody, draftOf, type IssuedKey } from "./types.ts";

export function CreateKeyForm({
  session,
  modelIds,
  onCreated,
}: {
  session: Session;
  modelIds: string[];
  onCreated: (key: IssuedKey) => void;
}) {
  const [draft, setDraft] = useState(() => draftOf());
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onCreated(await session.api.call<IssuedKey>("POST", "/api/admin/keys", createBody(draft)));
      setDraft(draftOf());
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card keys-create" onSubmit={submit} aria-labelledby="keys-create-title">
      <h2 id="keys-create-title">Create a key</h2>
      <KeyFields idPrefix="create" draft={draft} onChange={setDraft} modelIds={modelIds} withRole />
      <ErrorNotice error={error} />
      <div class="keys-form-actions">
        <button type="submit" class="primary" disabled={busy || draft.name.trim() === ""}>
          Create key
        </button>
      </div>
    </form>
  );
}
