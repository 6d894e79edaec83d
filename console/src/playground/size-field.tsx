/** "Size": the model's sizes, or common sizes its rule allows plus "Custom…" (width, height). */
import { SelectField } from "./fields.tsx";
import type { FormValues } from "./form-values.ts";
import { CUSTOM, fitsLimits, sizeChoices } from "./sizes.ts";
import type { ModelEntry } from "./types.ts";

export function SizeField({
  model,
  values,
  onChange,
}: {
  model: ModelEntry;
  values: FormValues;
  onChange: (change: Partial<FormValues>) => void;
}) {
  const { sizes, custom } = sizeChoices(model);
  const choices = sizes.map((size) => ({ value: size, label: size }));
  if (custom) choices.push({ value: CUSTOM, label: "Custom…" });
  const customSize = `${values.width}x${values.height}`;
  const outside =
    values.size === CUSTOM && model.size_limits && !fitsLimits(customSize, model.size_limits);

  return (
    <SelectField
      id="pg-size"
      label="Size"
      value={values.size}
      choices={choices}
      onChange={(size) => onChange({ size })}
    >
      {values.size === CUSTOM && (
        <div class="pg-custom-size">
          <div>
            <label for="pg-width">Width</label>
            <input
              id="pg-width"
              type="number"
              min={1}
              step={model.size_limits?.multiple_of ?? 1}
              max={model.size_limits?.max_side}
              value={values.width}
              onInput={(event) => onChange({ width: event.currentTarget.value })}
            />
          </div>
          <span aria-hidden="true">×</span>
          <div>
            <label for="pg-height">Height</label>
            <input
              id="pg-height"
              type="number"
              min={1}
              step={model.size_limits?.multiple_of ?? 1}
              max={model.size_limits?.max_side}
              value={values.height}
              onInput={(event) => onChange({ height: event.currentTarget.value })}
            />
          </div>
        </div>
      )}
      {values.size === CUSTOM && model.size_rule && (
        <p class={`pg-hint ${outside ? "status-warn" : "muted"}`}>
          {outside ? `${customSize} is outside the rule. ` : ""}
          {model.size_rule}
        </p>
      )}
    </SelectField>
  );
}
