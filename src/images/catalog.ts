/**
 * The model catalog: one row per model, read by validation (images/plan), fan-out
 * (images/generate), the model list (GET /api/models) and, later, billing. A fact about a model
 * lives here and nowhere else.
 */
import type { OutputFormat } from "../providers/types.ts";

export type ProviderName = "openai" | "google" | "local";

/** Sizes a model takes: a fixed list, or a rule for models that take any WxH within bounds. */
export type SizeRule =
  | { kind: "list"; sizes: readonly string[]; auto: boolean }
  | {
      kind: "rule";
      /** Both sides must be multiples of this. */
      multipleOf: number;
      maxSide: number;
      minPixels: number;
      maxPixels: number;
      /** Bounds of width / height. */
      minRatio: number;
      maxRatio: number;
      auto: boolean;
    };

export interface ModelSpec {
  id: string;
  provider: ProviderName;
  upstreamId: string;
  /** Other names clients may use; `provider/id` is always accepted too. */
  aliases: readonly string[];
  /** What the model list says about it; honest about what the model is. */
  description: string;
  sizes: SizeRule;
  defaultSize: string;
  /** The most images one upstream call makes; the hub fans out for more. */
  maxPerCall: number;
  /**
   * Default time budget of one upstream call, ms (UPSTREAM_TIMEOUT_MS or a route overrides it).
   * Sized from how long the model can take at its largest size and quality, with headroom.
   */
  timeoutMs: number;
  /** Accepted `quality` values and the one used when the request names none. */
  qualities: readonly string[];
  defaultQuality: string | undefined;
  /** Accepted `style` values; empty when the model has no notion of style. */
  styles: readonly string[];
  defaultStyle: string | undefined;
  maxPromptLength: number;
  /** The most input images an edit takes; 0 when the model cannot edit. */
  maxInputImages: number;
  /** Whether an edit may carry a mask. */
  masks: boolean;
  /** Formats the model can make (`output_format`); the first is its default. */
  outputFormats: readonly OutputFormat[];
  /** Whether `output_compression` applies (jpeg/webp output). */
  compression: boolean;
  /** Whether `background` (transparent/opaque/auto) applies. */
  background: boolean;
  /** Whether `moderation` (low/auto) applies. */
  moderation: boolean;
  /** `ai` for real models; `placeholder` for the offline test pattern. */
  kind: "ai" | "placeholder";
}

const DALL_E_2_SIZES = ["256x256", "512x512", "1024x1024"] as const;
const DALL_E_3_SIZES = ["1024x1024", "1792x1024", "1024x1792"] as const;
const GPT_IMAGE_SIZES = ["1024x1024", "1536x1024", "1024x1536"] as const;
const GPT_IMAGE_QUALITIES = ["low", "medium", "high", "auto"] as const;

/**
 * Output sizes of Gemini 2.5 Flash Image per aspect ratio (1:1, 2:3, 3:2, 3:4, 4:3, 4:5, 5:4,
 * 9:16, 16:9, 21:9), as the Gemini API image generation guide lists them.
 */
const GEMINI_FLASH_SIZES = [
  "1024x1024",
  "832x1248",
  "1248x832",
  "864x1184",
  "1184x864",
  "896x1152",
  "1152x896",
  "768x1344",
  "1344x768",
  "1536x672",
] as const;

/** Gemini 3 Pro Image at 1K; 2K and 4K are the same ratios at twice and four times the sides. */
const GEMINI_PRO_1K_SIZES = [
  "1024x1024",
  "848x1264",
  "1264x848",
  "896x1200",
  "1200x896",
  "928x1152",
  "1152x928",
  "768x1376",
  "1376x768",
  "1584x672",
] as const;

const GEMINI_PRO_SIZES = [1, 2, 4].flatMap((scale) =>
  GEMINI_PRO_1K_SIZES.map((size) => {
    const [width, height] = size.split("x").map(Number) as [number, number];
    return `${width * scale}x${height * scale}`;
  }),
);

/** Imagen 4 output sizes for its aspect ratios 1:1, 3:4, 4:3, 9:16, 16:9. */
const IMAGEN_SIZES = ["1024x1024", "896x1280", "1280x896", "768x1408", "1408x768"] as const;

const openAIGptImage = (id: string, description: string): ModelSpec => ({
  id,
  provider: "openai",
  upstreamId: id,
  aliases: [],
  description,
  sizes: { kind: "list", sizes: GPT_IMAGE_SIZES, auto: true },
  defaultSize: "1024x1024",
  maxPerCall: 10,
  timeoutMs: 300_000,
  qualities: GPT_IMAGE_QUALITIES,
  defaultQuality: "auto",
  styles: [],
  defaultStyle: undefined,
  maxPromptLength: 32000,
  maxInputImages: 16,
  masks: true,
  outputFormats: ["png", "jpeg", "webp"],
  compression: true,
  background: true,
  moderation: true,
  kind: "ai",
});

export const MODELS: readonly ModelSpec[] = [
  {
    id: "dall-e-2",
    provider: "openai",
    upstreamId: "dall-e-2",
    aliases: [],
    description: "OpenAI DALL·E 2. Square sizes, up to 10 images per call, edits with one image.",
    sizes: { kind: "list", sizes: DALL_E_2_SIZES, auto: false },
    defaultSize: "1024x1024",
    maxPerCall: 10,
    timeoutMs: 60_000,
    qualities: ["standard"],
    defaultQuality: "standard",
    styles: [],
    defaultStyle: undefined,
    maxPromptLength: 1000,
    maxInputImages: 1,
    masks: true,
    outputFormats: ["png"],
    compression: false,
    background: false,
    moderation: false,
    kind: "ai",
  },
  {
    id: "dall-e-3",
    provider: "openai",
    upstreamId: "dall-e-3",
    aliases: [],
    description: "OpenAI DALL·E 3. One image per upstream call (the hub fans out), hd quality.",
    sizes: { kind: "list", sizes: DALL_E_3_SIZES, auto: false },
    defaultSize: "1024x1024",
    maxPerCall: 1,
    timeoutMs: 120_000,
    qualities: ["standard", "hd"],
    defaultQuality: "standard",
    styles: ["vivid", "natural"],
    defaultStyle: "vivid",
    maxPromptLength: 4000,
    maxInputImages: 0,
    masks: false,
    outputFormats: ["png"],
    compression: false,
    background: false,
    moderation: false,
    kind: "ai",
  },
  openAIGptImage("gpt-image-1", "OpenAI GPT Image 1. Generates and edits (up to 16 images)."),
  openAIGptImage("gpt-image-1-mini", "OpenAI GPT Image 1 mini: cheaper and faster."),
  openAIGptImage("gpt-image-1.5", "OpenAI GPT Image 1.5. Generates and edits."),
  {
    ...openAIGptImage("gpt-image-2", "OpenAI GPT Image 2. Any size in multiples of 16."),
    // Both sides multiples of 16, long side at most 3840, aspect ratio from 1:3 to 3:1, and a
    // pixel count from 655,360 up to 3840x2160.
    sizes: {
      kind: "rule",
      multipleOf: 16,
      maxSide: 3840,
      minPixels: 655_360,
      maxPixels: 3840 * 2160,
      minRatio: 1 / 3,
      maxRatio: 3,
      auto: true,
    },
  },
  {
    id: "gemini-2.5-flash-image",
    provider: "google",
    upstreamId: "gemini-2.5-flash-image",
    aliases: ["nano-banana"],
    description: "Google Gemini 2.5 Flash Image. One image per call; edits with up to 3 images.",
    sizes: { kind: "list", sizes: GEMINI_FLASH_SIZES, auto: false },
    defaultSize: "1024x1024",
    maxPerCall: 1,
    timeoutMs: 120_000,
    qualities: [],
    defaultQuality: undefined,
    styles: [],
    defaultStyle: undefined,
    maxPromptLength: 32000,
    maxInputImages: 3,
    masks: false,
    outputFormats: ["png"],
    compression: false,
    background: false,
    moderation: false,
    kind: "ai",
  },
  {
    id: "gemini-3-pro-image-preview",
    provider: "google",
    upstreamId: "gemini-3-pro-image-preview",
    aliases: ["nano-banana-pro"],
    description: "Google Gemini 3 Pro Image (preview). 1K, 2K and 4K; edits with up to 14 images.",
    sizes: { kind: "list", sizes: GEMINI_PRO_SIZES, auto: false },
    defaultSize: "1024x1024",
    maxPerCall: 1,
    timeoutMs: 180_000,
    qualities: [],
    defaultQuality: undefined,
    styles: [],
    defaultStyle: undefined,
    maxPromptLength: 32000,
    maxInputImages: 14,
    masks: false,
    outputFormats: ["png"],
    compression: false,
    background: false,
    moderation: false,
    kind: "ai",
  },
  {
    id: "imagen-4.0-generate-001",
    provider: "google",
    upstreamId: "imagen-4.0-generate-001",
    aliases: ["imagen-4"],
    description: "Google Imagen 4. Up to 4 images per call; no editing.",
    sizes: { kind: "list", sizes: IMAGEN_SIZES, auto: false },
    defaultSize: "1024x1024",
    maxPerCall: 4,
    timeoutMs: 120_000,
    qualities: [],
    defaultQuality: undefined,
    styles: [],
    defaultStyle: undefined,
    // Imagen takes at most 480 prompt tokens; about four characters a token.
    maxPromptLength: 1920,
    maxInputImages: 0,
    masks: false,
    outputFormats: ["png", "jpeg"],
    compression: false,
    background: false,
    moderation: false,
    kind: "ai",
  },
  {
    id: "local/placeholder",
    provider: "local",
    upstreamId: "placeholder",
    aliases: ["placeholder"],
    description:
      "Not an AI model: an offline test pattern drawn from the prompt, deterministic, at any size. " +
      "For trying the hub without provider keys and for tests.",
    sizes: {
      kind: "rule",
      multipleOf: 1,
      maxSide: 4096,
      minPixels: 1,
      maxPixels: 4096 * 4096,
      minRatio: 1 / 16,
      maxRatio: 16,
      auto: true,
    },
    defaultSize: "1024x1024",
    maxPerCall: 10,
    timeoutMs: 30_000,
    qualities: ["standard", "hd", "low", "medium", "high", "auto"],
    defaultQuality: "standard",
    styles: ["vivid", "natural"],
    defaultStyle: "vivid",
    maxPromptLength: 32000,
    maxInputImages: 16,
    masks: true,
    outputFormats: ["png", "jpeg", "webp"],
    compression: true,
    background: true,
    moderation: false,
    kind: "placeholder",
  },
];

const PROVIDER_PREFIXES: Record<ProviderName, readonly string[]> = {
  openai: ["openai"],
  google: ["google", "gemini"],
  local: ["local"],
};

export interface Catalog {
  models: readonly ModelSpec[];
  /** The spec a client's model name means, or undefined when the hub knows no such model. */
  find(name: string): ModelSpec | undefined;
}

/** Builds the lookup over every id, alias and `provider/…` spelling, plus admin aliases. */
export function createCatalog(
  models: readonly ModelSpec[] = MODELS,
  extraAliases: Record<string, string> = {},
): Catalog {
  const byName = new Map<string, ModelSpec>();
  for (const model of models) {
    const names = [model.id, ...model.aliases];
    for (const name of names) {
      byName.set(name, model);
      for (const prefix of PROVIDER_PREFIXES[model.provider]) {
        if (!name.startsWith(`${prefix}/`)) byName.set(`${prefix}/${name}`, model);
      }
    }
  }
  for (const [alias, target] of Object.entries(extraAliases)) {
    const model = byName.get(target);
    if (!model) throw new Error(`Model alias '${alias}' points at unknown model '${target}'.`);
    byName.set(alias, model);
  }
  return { models, find: (name) => byName.get(name.trim()) };
}
