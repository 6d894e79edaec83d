/**
 * One key's row and its actions. Revoke and Rotate ask once more (they cut off whoever uses the
 * key); Credit and Edit open a form in a row of their own below it. The buttons keep short names
 * ("Revoke", not "Revoke key x"): the row says which key they act on.
 */
import { useState } from "preact/hooks";
import { ErrorNotice, when } from "../components.tsx";
import type { Session } from "../session.ts";
import { CreditForm, EditForm } from "./row-forms.tsx";
import { type ApiKey, balanceText, type IssuedKey } from "./types.ts";

type Mode = "none" | "revoke" | "rotate" | "credit" | "edit";

interface Props {
  session: Session;
  apiKey: ApiKey;
  modelIds: string[];
  onChanged: (key: ApiKey) => void;
  onRotated: (key: IssuedKey) => void;
}

export const KEY_COLUMNS = 9;

export function KeyRow({ session, apiKey, modelIds, onChanged, onRotated }: Props) {
  const [mode, setMode] = useState<Mode>("none");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const revoked = apiKey.revoked_at !== null;
  const path = `/api/admin/keys/${encodeURIComponent(apiKey.id)}`;

  const run = async (action: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await action();
      setMode("none");
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  const revoke = () => run(async () => onChanged(await session.api.call<ApiKey>("DELETE", path)));
  const rotate = () =>
    run(async () => onRotated(await session.api.call<IssuedKey>("POST", `${path}/rotate`)));
  const open = (next: Mode) => {
    setError(null);
    setMode(mode === next ? "none" : next);
  };

  return (
    <>
      <tr class={revoked ? "keys-revoked" : undefined}>
        <th scope="row">
          {apiKey.name}
          {apiKey.id === session.me.id && <span class="muted"> (you)</span>}
          <div class="muted keys-id">
            <code>{apiKey.id}</code>
          </div>
        </th>
        <td data-label="Role">{apiKey.role}</td>
        <td data-label="Balance" class="number">
          {balanceText(apiKey.balance)}
        </td>
        <td data-label="Models">{apiKey.models === null ? "all" : apiKey.models.join(", ")}</td>
        <td data-label="RPM / IPM" class="number">
          {apiKey.rpm ?? "—"} / {apiKey.ipm ?? "—"}
        </td>
        <td data-label="Created">{new Date(apiKey.created_at * 1000).toLocaleDateString()}</td>
        <td data-label="Last used">
          {apiKey.last_used_at === null ? "never" : when(apiKey.last_used_at)}
        </td>
        <td data-label="Status">
          {revoked ? (
            <span>revoked {when(apiKey.revoked_at)}</span>
          ) : (
            <span class="status-ok">active</span>
          )}
        </td>
        <td class="keys-actions-cell">
          {!revoked && (
            <div class="keys-actions">
              {mode === "revoke" || mode === "rotate" ? (
                <>
                  <button
                    type="button"
                    class="danger"
                    disabled={busy}
                    onClick={mode === "revoke" ? revoke : rotate}
                  >
                    {mode === "revoke" ? "Confirm revoke" : "Confirm rotate"}
                  </button>
                  <button type="button" disabled={busy} onClick={() => setMode("none")}>
                    Cancel
                  </button>
                </>
              ) : (
                <>
                  <button
                    type="button"
                    aria-expanded={mode === "edit"}
                    onClick={() => open("edit")}
                  >
                    Edit
                  </button>
                  <button
                    type="button"
                    aria-expanded={mode === "credit"}
                    onClick={() => open("credit")}
                  >
                    Credit
                  </button>
                  <button type="button" onClick={() => open("rotate")}>
                    Rotate
                  </button>
                  <button type="button" class="danger" onClick={() => open("revoke")}>
                    Revoke
                  </button>
                </>
              )}
            </div>
          )}
        </td>
      </tr>
      {(mode === "edit" || mode === "credit" || error !== null) && (
        <tr class="keys-panel">
          <td colSpan={KEY_COLUMNS}>
            {mode === "edit" && (
              <EditForm
                apiKey={apiKey}
                modelIds={modelIds}
                busy={busy}
                onCancel={() => setMode("none")}
                onSave={(body) =>
                  run(async () => onChanged(await session.api.call<ApiKey>("PATCH", path, body)))
                }
              />
            )}
            {mode === "credit" && (
              <CreditForm
                apiKey={apiKey}
                busy={busy}
                onCancel={() => setMode("none")}
                onCredit={(amount) =>
                  run(async () =>
                    onChanged(await session.api.call<ApiKey>("POST", `${path}/credit`, { amount })),
                  )
                }
              />
            )}
            <ErrorNotice error={error} />
          </td>
        </tr>
      )}
    </>
  );
}
