/** A labelled select: every control on the page has a `<label for>`. */
import type { ComponentChildren } from "preact";

export interface Choice {
  value: string;
  label: string;
  disabled?: boolean;
}

export function SelectField(props: {
  id: string;
  label: string;
  value: string;
  choices: readonly Choice[];
  onChange: (value: string) => void;
  children?: ComponentChildren;
}) {
  return (
    <div class="field">
      <label for={props.id}>{props.label}</label>
      <select
        id={props.id}
        value={props.value}
        onChange={(event) => props.onChange(event.currentTarget.value)}
      >
        {props.choices.map((choice) => (
          <option key={choice.value} value={choice.value} disabled={choice.disabled}>
            {choice.label}
          </option>
        ))}
      </select>
      {props.children}
    </div>
  );
}

/** Values as they are, with "Default" first when the model's own default is not known here. */
export function choicesOf(values: readonly string[], defaultLabel?: string): Choice[] {
  const list = values.map((value) => ({ value, label: value }));
  return defaultLabel ? [{ value: "", label: defaultLabel }, ...list] : list;
}
