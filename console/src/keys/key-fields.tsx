/**
 * The fields of a key, shared by the create form and a row's Edit form. Empty limits mean no
 * limit, and no model ticked means every model, as the API takes them.
 */
import type { KeyDraft } from "./types.ts";

interface Props {
  /** Prefix of the fields' ids, unique on the page. */
  idPrefix: string;
  draft: KeyDraft;
  onChange: (draft: KeyDraft) => void;
  modelIds: string[];
  /** Role is chosen once, at creation. */
  withRole?: boolean;
}

export function KeyFields({ idPrefix, draft, onChange, modelIds, withRole }: Props) {
  const set = (field: keyof KeyDraft) => (event: { currentTarget: { value: string } }) =>
    onChange({ ...draft, [field]: event.currentTarget.value });
  const id = (name: string) => `${idPrefix}-${name}`;
  return (
    <>
      <div class="form-grid">
        <div>
          <label for={id("name")}>Name</label>
          <input
            id={id("name")}
            required
            maxLength={100}
            value={draft.name}
            onInput={set("name")}
          />
        </div>
        {withRole && (
          <div>
            <label for={id("role")}>Role</label>
            <select id={id("role")} value={draft.role} onChange={set("role")}>
              <option value="client">client</option>
              <option value="admin">admin</option>
            </select>
          </div>
        )}
        <div>
          <label for={id("balance")}>Credit (USD)</label>
          <input
            id={id("balance")}
            type="number"
            min="0"
            step="0.01"
            inputMode="decimal"
            placeholder="unlimited"
            aria-describedby={id("balance-hint")}
            value={draft.balance}
            onInput={set("balance")}
          />
          <small id={id("balance-hint")} class="muted">
            Empty: unlimited
          </small>
        </div>
        <div>
          <label for={id("rpm")}>Requests per minute</label>
          <input
            id={id("rpm")}
            type="number"
            min="1"
            step="1"
            placeholder="no limit"
            value={draft.rpm}
            onInput={set("rpm")}
          />
        </div>
        <div>
          <label for={id("ipm")}>Images per minute</label>
          <input
            id={id("ipm")}
            type="number"
            min="1"
            step="1"
            placeholder="no limit"
            value={draft.ipm}
            onInput={set("ipm")}
          />
        </div>
      </div>
      <ModelPicker
        idPrefix={idPrefix}
        chosen={draft.models}
        modelIds={modelIds}
        onChange={(models) => onChange({ ...draft, models })}
      />
    </>
  );
}

function ModelPicker({
  idPrefix,
  chosen,
  modelIds,
  onChange,
}: {
  idPrefix: string;
  chosen: string[];
  modelIds: string[];
  onChange: (models: string[]) => void;
}) {
  // A model the key allows that the catalog no longer lists stays visible, to be unticked.
  const ids = [...new Set([...modelIds, ...chosen])];
  const toggle = (model: string, on: boolean) =>
    onChange(on ? [...chosen, model] : chosen.filter((item) => item !== model));
  const summary =
    chosen.length === 0
      ? "all"
      : `${chosen.length} chosen: ${chosen.slice(0, 3).join(", ")}${chosen.length > 3 ? ", …" : ""}`;
  return (
    <details class="keys-models">
      <summary>Allowed models: {summary}</summary>
      <fieldset>
        <legend class="muted">Tick the models this key may use; none ticked allows all.</legend>
        <div class="keys-model-list">
          {ids.map((model) => (
            <label class="check" key={model}>
              <input
                type="checkbox"
                id={`${idPrefix}-model-${model}`}
                checked={chosen.includes(model)}
                onChange={(event) => toggle(model, event.currentTarget.checked)}
              />
              {model}
            </label>
          ))}
        </div>
        {chosen.length > 0 && (
          <button type="button" class="link-button" onClick={() => onChange([])}>
            Allow all models
          </button>
        )}
      </fieldset>
    </details>
  );
}
