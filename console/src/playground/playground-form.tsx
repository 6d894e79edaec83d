/**
 * The form: the model, the image to edit (given as `children`), the options the model takes,
 * the prompt and Generate with its price. It never waits for a request: jobs run beside it.
 */
import type { ComponentChildren } from "preact";
import { SelectField } from "./fields.tsx";
import { chosenSize, type FormValues } from "./form-values.ts";
import { ModelOptions } from "./model-options.tsx";
import { modelLabel } from "./models.ts";
import { priceText } from "./price.ts";
import type { ModelEntry } from "./types.ts";

export function PlaygroundForm(props: {
  models: readonly ModelEntry[];
  model: ModelEntry;
  values: FormValues;
  prompt: string;
  /** Whether an image to edit is loaded: models that cannot edit say so. */
  editing: boolean;
  onModel: (model: ModelEntry) => void;
  onValues: (change: Partial<FormValues>) => void;
  onPrompt: (prompt: string) => void;
  onGenerate: () => void;
  children?: ComponentChildren;
}) {
  const { models, model, values, prompt, editing } = props;
  const blocked = editing && !model.edits;
  const ready = prompt.trim() !== "" && !blocked;
  const over = prompt.length > model.max_prompt_length;
  const choices = models.map((entry) => ({
    value: entry.id,
    label: `${modelLabel(entry)}${editing && !entry.edits ? " — no edits" : ""}`,
  }));

  return (
    <form
      class="card pg-form"
      aria-label="Generate images"
      onSubmit={(event) => {
        event.preventDefault();
        if (ready) props.onGenerate();
      }}
    >
      <SelectField
        id="pg-model"
        label="Model"
        value={model.id}
        choices={choices}
        onChange={(id) => {
          const next = models.find((entry) => entry.id === id);
          if (next) props.onModel(next);
        }}
      >
        {model.description && <p class="muted pg-hint">{model.description}</p>}
      </SelectField>
      {props.children}
      {blocked && (
        <div class="notice" role="status">
          {model.id} does not edit images: pick a model that does, or remove the image.
        </div>
      )}
      <ModelOptions model={model} values={values} onChange={props.onValues} />
      <label for="pg-prompt">Prompt</label>
      <textarea
        id="pg-prompt"
        rows={4}
        value={prompt}
        aria-describedby="pg-prompt-count"
        placeholder={editing ? "What to change" : "What to draw"}
        onInput={(event) => props.onPrompt(event.currentTarget.value)}
        onKeyDown={(event) => {
          if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
            event.preventDefault();
            event.currentTarget.form?.requestSubmit();
          }
        }}
      />
      <p id="pg-prompt-count" class={`pg-hint pg-count ${over ? "status-bad" : "muted"}`}>
        {prompt.length.toLocaleString()} / {model.max_prompt_length.toLocaleString()} characters
        {over && " (too long for this model)"}
      </p>
      <div class="pg-generate">
        <span class="pg-price">
          {priceText(model, chosenSize(values), values.quality || undefined, values.n)}
        </span>
        <button type="submit" class="primary" disabled={!ready}>
          Generate
        </button>
      </div>
      <p class="muted pg-hint">Ctrl+Enter (⌘+Enter) in the prompt generates too.</p>
    </form>
  );
}
