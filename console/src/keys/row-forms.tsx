/** The forms a key's row opens: Edit (name, models, limits, balance) and Credit (add or take). */
import { useState } from "preact/hooks";
import { KeyFields } from "./key-fields.tsx";
import { type ApiKey, balanceText, draftOf, patchBody } from "./types.ts";

export function EditForm({
  apiKey,
  modelIds,
  busy,
  onSave,
  onCancel,
}: {
  apiKey: ApiKey;
  modelIds: string[];
  busy: boolean;
  onSave: (body: Record<string, unknown>) => void;
  onCancel: () => void;
}) {
  const [draft, setDraft] = useState(() => draftOf(apiKey));
  const body = patchBody(apiKey, draft);
  const submit = (event: Event) => {
    event.preventDefault();
    onSave(body);
  };
  return (
    <form class="keys-row-form" onSubmit={submit} aria-label={`Edit ${apiKey.name}`}>
      <KeyFields
        idPrefix={`edit-${apiKey.id}`}
        draft={draft}
        onChange={setDraft}
        modelIds={modelIds}
      />
      <div class="keys-form-actions">
        <button type="submit" class="primary" disabled={busy || Object.keys(body).length === 0}>
          Save
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

export function CreditForm({
  apiKey,
  busy,
  onCredit,
  onCancel,
}: {
  apiKey: ApiKey;
  busy: boolean;
  onCredit: (amount: number) => void;
  onCancel: () => void;
}) {
  const [amount, setAmount] = useState("");
  const id = `credit-${apiKey.id}`;
  const value = Number(amount);
  const submit = (event: Event) => {
    event.preventDefault();
    onCredit(value);
  };
  return (
    <form class="keys-row-form" onSubmit={submit} aria-label={`Credit ${apiKey.name}`}>
      {apiKey.balance === null && (
        <p class="muted">
          This key has no credit limit. Edit it and set a credit to give it one; credit then adds to
          it.
        </p>
      )}
      <label for={id}>Amount (USD)</label>
      <div class="keys-inline">
        <input
          id={id}
          type="number"
          step="0.01"
          inputMode="decimal"
          required
          aria-describedby={`${id}-hint`}
          value={amount}
          onInput={(event) => setAmount(event.currentTarget.value)}
        />
        <button
          type="submit"
          class="primary"
          disabled={busy || amount.trim() === "" || !Number.isFinite(value) || value === 0}
        >
          {value < 0 ? "Take back" : "Add credit"}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
      </div>
      <small id={`${id}-hint`} class="muted">
        Balance now {balanceText(apiKey.balance)}. A negative amount takes credit back (not below
        zero).
      </small>
    </form>
  );
}
