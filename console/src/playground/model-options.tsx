/** The options the chosen model takes, and only those. */
import { choicesOf, SelectField } from "./fields.tsx";
import type { FormValues } from "./form-values.ts";
import { SizeField } from "./size-field.tsx";
import type { ModelEntry } from "./types.ts";

export function ModelOptions({
  model,
  values,
  onChange,
}: {
  model: ModelEntry;
  values: FormValues;
  onChange: (change: Partial<FormValues>) => void;
}) {
  const most = Math.max(1, model.max_images || 10);
  return (
    <div class="pg-options">
      <SizeField model={model} values={values} onChange={onChange} />
      <div class="field">
        <label for="pg-n">Number of images</label>
        <input
          id="pg-n"
          type="number"
          min={1}
          max={most}
          value={values.n}
          onInput={(event) => {
            const n = Number(event.currentTarget.value);
            if (Number.isFinite(n) && n > 0) onChange({ n: Math.min(most, Math.round(n)) });
          }}
        />
      </div>
      {model.qualities.length > 0 && (
        <SelectField
          id="pg-quality"
          label="Quality"
          value={values.quality}
          choices={choicesOf(model.qualities, model.default_quality ? undefined : "Default")}
          onChange={(quality) => onChange({ quality })}
        />
      )}
      {model.styles.length > 0 && (
        <SelectField
          id="pg-style"
          label="Style"
          value={values.style}
          choices={choicesOf(model.styles, model.default_style ? undefined : "Default")}
          onChange={(style) => onChange({ style })}
        />
      )}
      {model.output_formats.length > 1 && (
        <SelectField
          id="pg-format"
          label="Output format"
          value={values.outputFormat}
          choices={choicesOf(model.output_formats, `Default (${model.output_formats[0]})`)}
          onChange={(outputFormat) => onChange({ outputFormat })}
        />
      )}
      {model.background && (
        <SelectField
          id="pg-background"
          label="Background"
          value={values.background}
          choices={choicesOf(["transparent", "opaque", "auto"], "Default")}
          onChange={(background) => onChange({ background })}
        />
      )}
    </div>
  );
}
