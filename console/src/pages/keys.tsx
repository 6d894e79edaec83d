/**
 * Keys (admin): every API key with its credit, models and limits; create, edit, credit, rotate
 * and revoke. A new secret is shown once, alone, to be copied.
 */
import { useEffect, useState } from "preact/hooks";
import { ErrorNotice, PageHeader } from "../components.tsx";
import { CreateKeyForm } from "../keys/create-form.tsx";
import { KeysTable } from "../keys/keys-table.tsx";
import { NewSecret, type Secret } from "../keys/new-secret.tsx";
import type { ApiKey, IssuedKey } from "../keys/types.ts";
import type { Session } from "../session.ts";
import "../keys/keys.css";

export function KeysPage({ session }: { session: Session }) {
  const [keys, setKeys] = useState<ApiKey[] | null>(null);
  const [modelIds, setModelIds] = useState<string[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [secret, setSecret] = useState<Secret | null>(null);
  const [showRevoked, setShowRevoked] = useState(false);

  useEffect(() => {
    const abort = new AbortController();
    session.api
      .call<{ data: ApiKey[] }>("GET", "/api/admin/keys", undefined, abort.signal)
      .then((list) => setKeys(list.data))
      .catch((caught) => abort.signal.aborted || setError(caught));
    // The model list only fills the "allowed models" choice: without it, keys still work.
    session.api
      .call<{ data: { id: string }[] }>("GET", "/api/admin/models", undefined, abort.signal)
      .then((list) => setModelIds(list.data.map((model) => model.id).sort()))
      .catch(() => {});
    return () => abort.abort();
  }, [session]);

  const replace = (changed: ApiKey) =>
    setKeys((list) => {
      const rest = (list ?? []).filter((key) => key.id !== changed.id);
      return [...rest, changed];
    });
  const issued = (key: IssuedKey, rotated: boolean) => {
    const { key: secretValue, ...view } = key;
    replace(view);
    setSecret({ name: key.name, key: secretValue, rotated });
  };
  const revokedCount = keys?.filter((key) => key.revoked_at !== null).length ?? 0;

  return (
    <>
      <PageHeader title="Keys">
        <label class="check keys-show-revoked">
          <input
            type="checkbox"
            checked={showRevoked}
            aria-describedby="keys-revoked-count"
            onChange={(event) => setShowRevoked(event.currentTarget.checked)}
          />
          Show revoked
        </label>
        <span id="keys-revoked-count" class="muted">
          {revokedCount} revoked
        </span>
        <button
          type="button"
          class="primary"
          onClick={() => document.getElementById("create-name")?.focus()}
        >
          Add a key
        </button>
      </PageHeader>
      {secret && <NewSecret secret={secret} onDismiss={() => setSecret(null)} />}
      <ErrorNotice error={error} />
      {keys === null && error === null && (
        <p class="muted" aria-busy="true">
          Loading keys…
        </p>
      )}
      {keys && (
        <KeysTable
          session={session}
          keys={keys}
          showRevoked={showRevoked}
          modelIds={modelIds}
          onChanged={replace}
          onRotated={(key) => issued(key, true)}
        />
      )}
      <CreateKeyForm
        session={session}
        modelIds={modelIds}
        onCreated={(key) => issued(key, false)}
      />
    </>
  );
}
