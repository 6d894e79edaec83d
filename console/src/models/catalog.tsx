/** The model catalog with its filters: search, provider, status and "configured only". */
import { useMemo, useState } from "preact/hooks";
import { ModelItem } from "./model-item.tsx";
import type { CatalogModel } from "./types.ts";

export function Catalog({ models }: { models: CatalogModel[] }) {
  const [search, setSearch] = useState("");
  const [provider, setProvider] = useState("");
  const [status, setStatus] = useState("");
  const [configuredOnly, setConfiguredOnly] = useState(false);
  const providers = useMemo(
    () => [...new Set(models.map((model) => model.provider))].sort(),
    [models],
  );
  const words = search.toLowerCase().split(/\s+/).filter(Boolean);
  const shown = models.filter((model) => {
    if (provider && model.provider !== provider) return false;
    if (status && model.status !== status) return false;
    if (configuredOnly && !model.configured) return false;
    const text = [model.id, model.provider, model.description ?? "", ...(model.aliases ?? [])]
      .join(" ")
      .toLowerCase();
    return words.every((word) => text.includes(word));
  });

  return (
    <section aria-labelledby="models-catalog-title">
      <h2 id="models-catalog-title">Catalog</h2>
      <form
        class="card models-filters"
        aria-label="Model filters"
        onSubmit={(event) => event.preventDefault()}
      >
        <div class="models-search">
          <label for="models-search">Search</label>
          <input
            id="models-search"
            type="search"
            placeholder="id, alias or description"
            value={search}
            onInput={(event) => setSearch(event.currentTarget.value)}
          />
        </div>
        <div>
          <label for="models-provider">Provider</label>
          <select
            id="models-provider"
            value={provider}
            onChange={(event) => setProvider(event.currentTarget.value)}
          >
            <option value="">all</option>
            {providers.map((name) => (
              <option key={name}>{name}</option>
            ))}
          </select>
        </div>
        <div>
          <label for="models-status">Status</label>
          <select
            id="models-status"
            value={status}
            onChange={(event) => setStatus(event.currentTarget.value)}
          >
            <option value="">all</option>
            <option>active</option>
            <option>deprecated</option>
            <option>retired</option>
          </select>
        </div>
        <label class="check models-configured">
          <input
            type="checkbox"
            checked={configuredOnly}
            onChange={(event) => setConfiguredOnly(event.currentTarget.checked)}
          />
          Configured only
        </label>
      </form>
      <p class="muted" role="status">
        {shown.length} of {models.length} models
      </p>
      <div class="models-head" aria-hidden="true">
        <span>Model</span>
        <span>Provider</span>
        <span>Status</span>
        <span>Credentials</span>
        <span>Sizes</span>
        <span>Price</span>
      </div>
      <ul class="models-list" aria-label="Models">
        {shown.map((model) => (
          <ModelItem key={model.id} model={model} />
        ))}
      </ul>
    </section>
  );
}
