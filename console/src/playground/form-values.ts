/** The form's values for a model, and the request they make. */
import { CUSTOM, defaultSizeOf } from "./sizes.ts";
import type { ModelEntry } from "./types.ts";

/** Text as the inputs hold it; "" in a select means "the model's default" (nothing sent). */
export interface FormValues {
  size: string;
  width: string;
  height: string;
  n: number;
  quality: string;
  style: string;
  outputFormat: string;
  background: string;
}

export function defaultsFor(model: ModelEntry): FormValues {
  const size = defaultSizeOf(model);
  const [width, height] = /^\d+x\d+$/.test(size) ? size.split("x") : ["1024", "1024"];
  return {
    size,
    width: width ?? "1024",
    height: height ?? "1024",
    n: 1,
    quality: model.default_quality ?? "",
    style: model.default_style ?? "",
    outputFormat: "",
    background: "",
  };
}

/** The size the form asks for: a choice from the list, or the custom WxH. */
export function chosenSize(values: FormValues): string {
  return values.size === CUSTOM ? `${values.width}x${values.height}` : values.size;
}

/** The request's options, each only when the model takes it and the user chose it. */
export function optionsOf(model: ModelEntry, values: FormValues) {
  const n = Math.min(Math.max(1, Math.round(values.n) || 1), model.max_images || 10);
  return {
    model: model.id,
    n,
    size: chosenSize(values),
    quality: model.qualities.length > 0 && values.quality ? values.quality : undefined,
    style: model.styles.length > 0 && values.style ? values.style : undefined,
    output_format:
      model.output_formats.length > 1 && values.outputFormat ? values.outputFormat : undefined,
    background: model.background && values.background ? values.background : undefined,
  };
}
