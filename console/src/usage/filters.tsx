/**
 * The usage filters. Selects and dates apply at once; the model applies when its field is left
 * or Enter is pressed (a change event), not at every keystroke.
 */
import type { Filters } from "./types.ts";

export interface KeyOption {
  id: string;
  name: string;
  revoked: boolean;
}

interface Props {
  filters: Filters;
  onChange: (filters: Filters) => void;
  /** The keys to choose from (admins); null hides the key filter (a client sees only its own). */
  keys: KeyOption[] | null;
  models: string[];
}

export function UsageFilters({ filters, onChange, keys, models }: Props) {
  const set = (field: "key" | "model" | "status" | "from" | "to") => (value: string) =>
    onChange({ ...filters, [field]: value, offset: 0 });
  return (
    <form
      class="card usage-filters"
      aria-label="Usage filters"
      onSubmit={(event) => event.preventDefault()}
    >
      {keys && (
        <div>
          <label for="usage-key">Key</label>
          <select
            id="usage-key"
            value={filters.key}
            onChange={(event) => set("key")(event.currentTarget.value)}
          >
            <option value="">All keys</option>
            {keys.map((key) => (
              <option key={key.id} value={key.id}>
                {key.name}
                {key.revoked ? " (revoked)" : ""}
              </option>
            ))}
          </select>
        </div>
      )}
      <div>
        <label for="usage-model">Model</label>
        <input
          id="usage-model"
          list="usage-model-list"
          placeholder="any"
          spellcheck={false}
          value={filters.model}
          onChange={(event) => set("model")(event.currentTarget.value.trim())}
        />
        <datalist id="usage-model-list">
          {models.map((model) => (
            <option key={model} value={model} />
          ))}
        </datalist>
      </div>
      <div>
        <label for="usage-status">Status</label>
        <select
          id="usage-status"
          value={filters.status}
          onChange={(event) => set("status")(event.currentTarget.value)}
        >
          <option value="">any</option>
          <option value="succeeded">succeeded</option>
          <option value="partial">partial</option>
          <option value="failed">failed</option>
        </select>
      </div>
      <div>
        <label for="usage-from">From (UTC)</label>
        <input
          id="usage-from"
          type="date"
          value={filters.from}
          max={filters.to || undefined}
          onChange={(event) => set("from")(event.currentTarget.value)}
        />
      </div>
      <div>
        <label for="usage-to">To (UTC)</label>
        <input
          id="usage-to"
          type="date"
          value={filters.to}
          min={filters.from || undefined}
          onChange={(event) => set("to")(event.currentTarget.value)}
        />
      </div>
    </form>
  );
}
