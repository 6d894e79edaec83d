/** The sizes the form offers for a model: its own list, or common sizes its rule allows. */
import type { ModelEntry, SizeLimits } from "./types.ts";

export const COMMON_SIZES = [
  "256x256",
  "512x512",
  "768x768",
  "1024x1024",
  "1024x1536",
  "1536x1024",
  "1024x768",
  "768x1024",
  "1792x1024",
  "1024x1792",
  "2048x2048",
];

export const CUSTOM = "custom";

export interface SizeChoices {
  sizes: string[];
  /** Whether any WxH within a rule is taken, so "Custom…" makes sense. */
  custom: boolean;
}

export function sizeChoices(model: ModelEntry): SizeChoices {
  if (model.sizes) return { sizes: model.sizes, custom: false };
  const limits = model.size_limits;
  // Hubs without size_limits only say the rule in words; the API checks what is sent anyway.
  const fitting = limits
    ? COMMON_SIZES.filter((size) => fitsLimits(size, limits))
    : [...COMMON_SIZES];
  if (!fitting.includes(model.default_size) && model.default_size !== "auto") {
    fitting.unshift(model.default_size);
  }
  const auto = limits?.auto ?? /\bauto\b/.test(model.size_rule ?? "");
  return { sizes: auto ? [...fitting, "auto"] : fitting, custom: true };
}

/** Whether `WxH` is within the limits; true for text that is not WxH (the API decides). */
export function fitsLimits(size: string, limits: SizeLimits): boolean {
  const match = /^(\d+)x(\d+)$/.exec(size);
  if (!match) return true;
  const width = Number(match[1]);
  const height = Number(match[2]);
  const pixels = width * height;
  const ratio = width / height;
  const multiple = limits.multiple_of || 1;
  return (
    width % multiple === 0 &&
    height % multiple === 0 &&
    Math.max(width, height) <= limits.max_side &&
    pixels >= limits.min_pixels &&
    pixels <= limits.max_pixels &&
    ratio >= ratioOf(limits.min_ratio) - 1e-9 &&
    ratio <= ratioOf(limits.max_ratio) + 1e-9
  );
}

function ratioOf(value: number | string): number {
  if (typeof value === "number") return value;
  const [width, height] = value.split(":").map(Number);
  return width && height ? width / height : Number(value);
}

/** The size a model starts at: its default when offered, else the first it offers. */
export function defaultSizeOf(model: ModelEntry): string {
  const { sizes } = sizeChoices(model);
  return sizes.includes(model.default_size) ? model.default_size : (sizes[0] ?? "auto");
}
