/** The gallery's filters: a model, and for admins a key. */
import { SelectField } from "../playground/fields.tsx";
import type { GalleryFilters } from "./use-gallery.ts";

export function Filters(props: {
  filters: GalleryFilters;
  models: readonly string[];
  /** Key ids and names; null for a client key, which sees only its own images. */
  keys: readonly { id: string; name: string }[] | null;
  onChange: (filters: GalleryFilters) => void;
}) {
  const { filters, models, keys } = props;
  return (
    <form class="gl-filters" aria-label="Filters" onSubmit={(event) => event.preventDefault()}>
      <SelectField
        id="gl-model"
        label="Model"
        value={filters.model}
        choices={[
          { value: "", label: "All models" },
          ...models.map((id) => ({ value: id, label: id })),
        ]}
        onChange={(model) => props.onChange({ ...filters, model })}
      />
      {keys && (
        <SelectField
          id="gl-key"
          label="Key"
          value={filters.key}
          choices={[
            { value: "", label: "All keys" },
            ...keys.map((key) => ({ value: key.id, label: key.name })),
          ]}
          onChange={(key) => props.onChange({ ...filters, key })}
        />
      )}
    </form>
  );
}
