/**
 * A model's JSON fields (model-definition.ts) to the `ModelSpec` the hub reads, and back. The
 * checks here are the ones the schema cannot say (a default size the model does not take, a
 * ratio range upside down): each fails with a 400 naming the field, so the admin API and the
 * data file share them. Fields left out get the cautious default (one image per call, PNG, no
 * edits) rather than a guess at what a model can do.
 */
import { invalidRequest } from "../errors.ts";
import type { ModelSpec, SizeRule } from "./catalog.ts";
import type { ModelFieldValues } from "./model-definition.ts";

const DEFAULT_TIMEOUT_MS = 120_000;
const DEFAULT_PROMPT_MAX = 4000;

/**
 * The spec of a complete definition. `provider`, `upstream_model` (the id when left out) and
 * `sizes` are needed; the rest has defaults.
 *
 * @throws HubError 400 naming the first field that is wrong or missing.
 */
export function specFromFields(fields: ModelFieldValues, origin: ModelSpec["origin"]): ModelSpec {
  const id = required(fields.id, "id");
  const provider = required(fields.provider, "provider");
  const sizes = sizeRuleOf(required(fields.sizes, "sizes"));
  const defaultSize = fields.default_size ?? defaultSizeOf(sizes);
  if (!sizeAllowed(sizes, defaultSize)) {
    throw invalidRequest(
      `Invalid 'default_size': '${defaultSize}' is not one of the model's sizes.`,
      "default_size",
    );
  }
  const qualities = fields.qualities ?? [];
  const defaultQuality = pickDefault(qualities, fields.default_quality, "default_quality", "auto");
  const styles = fields.styles ?? [];
  const defaultStyle = pickDefault(styles, fields.default_style, "default_style", undefined);
  const edits = fields.edits ?? false;
  const aliases = fields.aliases ?? [];
  if (aliases.includes(id)) {
    throw invalidRequest("Invalid 'aliases': a model's id is not its own alias.", "aliases");
  }
  if (fields.successor === id) {
    throw invalidRequest("Invalid 'successor': a model cannot succeed itself.", "successor");
  }
  checkDate(fields.shutdown_date, "shutdown_date");
  checkDate(fields.checked, "checked");
  const upstreamId = fields.upstream_model ?? id;
  return {
    id,
    provider,
    upstreamId,
    aliases,
    description: fields.description ?? `${provider} model ${upstreamId}.`,
    sizes,
    defaultSize,
    maxPerCall: fields.max_per_call ?? 1,
    timeoutMs: fields.timeout_ms ?? DEFAULT_TIMEOUT_MS,
    qualities,
    defaultQuality,
    styles,
    defaultStyle,
    maxPromptLength: fields.prompt_max ?? DEFAULT_PROMPT_MAX,
    maxInputImages: edits === false ? 0 : edits.max_images,
    masks: edits === false ? false : edits.mask,
    outputFormats: fields.output_formats ?? ["png"],
    compression: fields.compression ?? false,
    background: fields.background ?? false,
    moderation: fields.moderation ?? false,
    extraOptions: fields.extra_options ?? {},
    requestTemplate: (fields.request_template ?? undefined) as ModelSpec["requestTemplate"],
    resizeToFit: fields.resize_to_fit ?? false,
    kind: fields.kind ?? "ai",
    shutdownDate: fields.shutdown_date ?? null,
    successor: fields.successor ?? null,
    useSuccessor: fields.use_successor ?? true,
    declaredStatus: fields.status ?? null,
    source: fields.source ?? null,
    checked: fields.checked ?? null,
    origin,
  };
}

/** The fields of a spec: what the admin API shows and what `like` copies. */
export function fieldsOfSpec(spec: ModelSpec): Required<Omit<ModelFieldValues, "like" | "price">> {
  return {
    id: spec.id,
    provider: spec.provider,
    upstream_model: spec.upstreamId,
    description: spec.description,
    kind: spec.kind,
    sizes:
      spec.sizes.kind === "list"
        ? [...spec.sizes.sizes, ...(spec.sizes.auto ? ["auto"] : [])]
        : {
            multiple_of: spec.sizes.multipleOf,
            max_side: spec.sizes.maxSide,
            min_pixels: spec.sizes.minPixels,
            max_pixels: spec.sizes.maxPixels,
            min_ratio: ratioText(spec.sizes.minRatio),
            max_ratio: ratioText(spec.sizes.maxRatio),
            auto: spec.sizes.auto,
          },
    default_size: spec.defaultSize,
    max_per_call: spec.maxPerCall,
    qualities: [...spec.qualities],
    default_quality: spec.defaultQuality ?? null,
    styles: [...spec.styles],
    default_style: spec.defaultStyle ?? null,
    prompt_max: spec.maxPromptLength,
    edits:
      spec.maxInputImages === 0 ? false : { max_images: spec.maxInputImages, mask: spec.masks },
    output_formats: [...spec.outputFormats],
    compression: spec.compression,
    background: spec.background,
    moderation: spec.moderation,
    extra_options: { ...spec.extraOptions },
    request_template: spec.requestTemplate ?? null,
    resize_to_fit: spec.resizeToFit,
    timeout_ms: spec.timeoutMs,
    aliases: [...spec.aliases],
    status: spec.declaredStatus,
    shutdown_date: spec.shutdownDate,
    successor: spec.successor,
    use_successor: spec.useSuccessor,
    source: spec.source,
    checked: spec.checked,
  };
}

/** What `like` copies: what the model can do, not who it is or where it is in its life. */
export const CAPABILITY_FIELDS = [
  "provider",
  "description",
  "kind",
  "sizes",
  "default_size",
  "max_per_call",
  "qualities",
  "default_quality",
  "styles",
  "default_style",
  "prompt_max",
  "edits",
  "output_formats",
  "compression",
  "background",
  "moderation",
  "extra_options",
  "request_template",
  "resize_to_fit",
  "timeout_ms",
] as const satisfies readonly (keyof ModelFieldValues)[];

function required<T>(value: T | undefined, field: string): T {
  if (value === undefined) {
    throw invalidRequest(
      `Missing '${field}': a model names it (or copies it from another with 'like').`,
      field,
      "missing_required_parameter",
    );
  }
  return value;
}

function sizeRuleOf(sizes: NonNullable<ModelFieldValues["sizes"]>): SizeRule {
  if (Array.isArray(sizes)) {
    const listed = sizes.filter((size) => size !== "auto");
    return { kind: "list", sizes: [...new Set(listed)], auto: listed.length < sizes.length };
  }
  const maxSide = sizes.max_side;
  const rule: SizeRule = {
    kind: "rule",
    multipleOf: sizes.multiple_of,
    maxSide,
    minPixels: sizes.min_pixels ?? 1,
    maxPixels: sizes.max_pixels ?? maxSide * maxSide,
    minRatio: ratioValue(sizes.min_ratio, 1 / maxSide, "sizes.min_ratio"),
    maxRatio: ratioValue(sizes.max_ratio, maxSide, "sizes.max_ratio"),
    auto: sizes.auto ?? false,
  };
  if (rule.minPixels > rule.maxPixels) {
    throw invalidRequest("Invalid 'sizes': min_pixels is above max_pixels.", "sizes.min_pixels");
  }
  if (rule.minRatio > rule.maxRatio) {
    throw invalidRequest("Invalid 'sizes': min_ratio is above max_ratio.", "sizes.min_ratio");
  }
  if (rule.multipleOf > maxSide) {
    throw invalidRequest("Invalid 'sizes': multiple_of is above max_side.", "sizes.multiple_of");
  }
  return rule;
}

function ratioValue(value: number | string | undefined, fallback: number, param: string): number {
  if (value === undefined) return fallback;
  if (typeof value === "number") return value;
  const [width, height] = value.split(":").map(Number);
  if (!width || !height) {
    throw invalidRequest(`Invalid '${param}': '${value}' is not a ratio W:H.`, param);
  }
  return width / height;
}

/** `3:1` and `1:3` for whole ratios, else the number. */
function ratioText(value: number): number | string {
  if (Number.isInteger(value)) return `${value}:1`;
  const inverse = 1 / value;
  if (Math.abs(inverse - Math.round(inverse)) < 1e-9) return `1:${Math.round(inverse)}`;
  return value;
}

/** 1024x1024 where the model takes it (the spec's default), else its first size. */
function defaultSizeOf(rule: SizeRule): string {
  if (sizeAllowed(rule, "1024x1024")) return "1024x1024";
  if (rule.kind === "list" && rule.sizes[0] !== undefined) return rule.sizes[0];
  if (rule.auto) return "auto";
  throw invalidRequest(
    "Missing 'default_size': the model does not take 1024x1024, so name the size it makes by default.",
    "default_size",
    "missing_required_parameter",
  );
}

/** Whether `size` (`WxH` or `auto`) is one the rule takes. */
export function sizeAllowed(rule: SizeRule, size: string): boolean {
  if (size === "auto") return rule.auto;
  const match = /^(\d+)x(\d+)$/.exec(size);
  if (!match) return false;
  const width = Number(match[1]);
  const height = Number(match[2]);
  if (rule.kind === "list") return rule.sizes.includes(`${width}x${height}`);
  const ratio = width / height;
  return (
    width > 0 &&
    height > 0 &&
    width % rule.multipleOf === 0 &&
    height % rule.multipleOf === 0 &&
    Math.max(width, height) <= rule.maxSide &&
    width * height >= rule.minPixels &&
    width * height <= rule.maxPixels &&
    ratio >= rule.minRatio - 1e-9 &&
    ratio <= rule.maxRatio + 1e-9
  );
}

function pickDefault(
  values: readonly string[],
  given: string | null | undefined,
  field: string,
  preferred: string | undefined,
): string | undefined {
  if (given === null || values.length === 0) {
    if (given) throw invalidRequest(`Invalid '${field}': the model has no such values.`, field);
    return undefined;
  }
  if (given !== undefined) {
    if (!values.includes(given)) {
      throw invalidRequest(
        `Invalid '${field}': '${given}' is not one of ${values.join(", ")}.`,
        field,
      );
    }
    return given;
  }
  return preferred !== undefined && values.includes(preferred) ? preferred : values[0];
}

function checkDate(value: string | null | undefined, field: string): void {
  if (value === null || value === undefined) return;
  const parsed = new Date(`${value}T00:00:00Z`);
  if (Number.isNaN(parsed.getTime()) || parsed.toISOString().slice(0, 10) !== value) {
    throw invalidRequest(`Invalid '${field}': '${value}' is not a date YYYY-MM-DD.`, field);
  }
}
