/**
 * The seed price list: what each catalog model costs upstream, as data. The database is seeded
 * with these rows on start (`Database.seedPrices` keeps rows an admin has edited), and the price
 * book (prices.ts) reads whatever the database then holds.
 *
 * Rules of the table:
 * - every catalog model is priced at every size × quality it accepts; `*` stands for any size or
 *   any quality where the price does not depend on it;
 * - `auto` (the model picks the size or quality) is priced as the dearest option it may pick,
 *   since a reservation must cover whatever comes back; a row with quality `*` next to named
 *   qualities is that catch-all (it also prices a lookup with no quality);
 * - figures are the providers' public list prices in whole micro-dollars; `source` says where a
 *   figure came from and says "estimate" where it is one.
 */
import type { ImagePrice, TokenPrice } from "../storage/db/types.ts";

const AS_OF = "list price as of 2026-11";

/**
 * gpt-image-2 takes any WxH (multiples of 16, up to 3840x2160 pixels), so it is priced by pixel
 * tier instead of by size: a size belongs to the first tier whose pixel count it does not exceed.
 * Tier keys are what the price rows carry in `size`; `<=1536x1024` reads "at most as many pixels
 * as 1536x1024".
 *
 * Each tier's price is the dearest image the tier can hold. OpenAI bills gpt-image-2 output by
 * tokens: for quality factor q (low 16, medium 48, high 96),
 *   tokens = ceil(q × round(q × short side / long side) × (2,000,000 + pixels) / 4,000,000)
 * (the formula behind OpenAI's image-generation cost calculator; it reproduces OpenAI's figures:
 * 7024 tokens for 1024x1024 high, 5488 for 1536x1024 high). The middle factor is largest, q, for a
 * square, so the dearest image of a tier is a square of the tier's largest pixel count:
 *   price = ceil(q² × (2,000,000 + tier pixels) / 4,000,000) × $30 per million output tokens.
 * A wide or tall image of the same tier costs less; the token charge settles the difference.
 */
export const PIXEL_TIERS: readonly { key: string; maxPixels: number }[] = [
  { key: "<=1024x1024", maxPixels: 1024 * 1024 },
  { key: "<=1536x1024", maxPixels: 1536 * 1024 },
  { key: "<=2048x2048", maxPixels: 2048 * 2048 },
  { key: "<=3840x2160", maxPixels: 3840 * 2160 },
];

/** A price row's size that names a pixel tier (`<=1536x1024`) rather than one size. */
export function isPixelTier(size: string): boolean {
  return size.startsWith("<=");
}

/**
 * The pixel tier of a `WxH` size, or undefined for text that is not a size or a size larger
 * than the largest tier.
 *
 * @example pixelTier("1536x864") // "<=1536x1024"
 */
export function pixelTier(size: string): string | undefined {
  const pixels = pixelsOf(size);
  if (pixels === undefined) return undefined;
  return PIXEL_TIERS.find((tier) => pixels <= tier.maxPixels)?.key;
}

/** The pixels of `WxH` (or of a tier's `<=WxH`); undefined for other text. */
export function pixelsOf(size: string): number | undefined {
  const match = /^(?:<=)?(\d+)x(\d+)$/.exec(size);
  return match ? Number(match[1]) * Number(match[2]) : undefined;
}

function price(
  model: string,
  size: string,
  quality: string,
  microsPerImage: number,
  source: string,
): ImagePrice {
  return { model, size, quality, microsPerImage, source, updatedAt: 0 };
}

/** low, medium, high in micro-dollars. */
type ByQuality = readonly [low: number, medium: number, high: number];

/**
 * Rows for a GPT image model: each quality at each size, quality `auto` (and none) at the high
 * price, and size `auto` at the dearer portrait/landscape price.
 */
function gptImageRows(
  model: string,
  sizes: Record<string, ByQuality>,
  auto: ByQuality,
  sourceOf: (size: string) => string,
): ImagePrice[] {
  return Object.entries({ ...sizes, auto }).flatMap(([size, [low, medium, high]]) => {
    const source = sourceOf(size);
    return [
      price(model, size, "low", low, source),
      price(model, size, "medium", medium, source),
      price(model, size, "high", high, source),
      price(model, size, "*", high, source),
    ];
  });
}

function gptImage1Family(
  model: string,
  square: ByQuality,
  wide: ByQuality,
  source: string,
): ImagePrice[] {
  return gptImageRows(
    model,
    { "1024x1024": square, "1536x1024": wide, "1024x1536": wide },
    wide,
    () => source,
  );
}

/** Output-token prices per tier (see PIXEL_TIERS), low / medium / high, in micro-dollars. */
const GPT_IMAGE_2_TIERS: Record<string, ByQuality> = {
  // OpenAI's published per-image figures for 1024x1024 ($0.006 / $0.053 / $0.211); the formula
  // gives 196 / 1756 / 7024 tokens, $0.00588 / $0.05268 / $0.21072, just under them.
  "<=1024x1024": [6_000, 53_000, 211_000],
  // Formula: 229 / 2058 / 8232 tokens × $30 per million.
  "<=1536x1024": [6_870, 61_740, 246_960],
  // Formula: 397 / 3568 / 14272 tokens (2048x2048 itself is the tier's dearest).
  "<=2048x2048": [11_910, 107_040, 428_160],
  // Formula: 659 / 5930 / 23719 tokens (a square of 3840x2160's pixel count).
  "<=3840x2160": [19_770, 177_900, 711_570],
};

/**
 * Gemini 3 Pro Image at 4K: the catalog's 1K sizes times four. 1K and 2K cost the same
 * ($0.134, 1120 output tokens at $120 per million); 4K costs $0.24 (2000 tokens).
 */
const GEMINI_PRO_4K_SIZES = [
  "4096x4096",
  "3392x5056",
  "5056x3392",
  "3584x4800",
  "4800x3584",
  "3712x4608",
  "4608x3712",
  "3072x5504",
  "5504x3072",
  "6336x2688",
] as const;

/** Gemini 3's 1K sizes (one per aspect ratio), and the same at 2K and 4K (`factor` 2, 4). */
const GEMINI_3_1K = [
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
function scaledGemini3(factor: number): string[] {
  return GEMINI_3_1K.map((size) => {
    const [width, height] = size.split("x").map(Number) as [number, number];
    return `${width * factor}x${height * factor}`;
  });
}

const SOURCES = {
  dallE2: `OpenAI API pricing page (DALL·E 2), ${AS_OF}: the last published figure (OpenAI retired the model upstream on 2026-05-12)`,
  dallE3: `OpenAI API pricing page (DALL·E 3), ${AS_OF}: the last published figure (OpenAI retired the model upstream on 2026-05-12)`,
  dallE3Unnamed: `OpenAI API pricing page (DALL·E 3), ${AS_OF}: a lookup with no quality is priced as hd, the dearest`,
  gptImage1: `OpenAI model page gpt-image-1, per-image output estimate, ${AS_OF} (last published figure; the model was shut down upstream on 2026-10-23)`,
  gptImage1Mini: `OpenAI model page gpt-image-1-mini, per-image output estimate, ${AS_OF}`,
  gptImage15: `OpenAI model page gpt-image-1.5, per-image output estimate, ${AS_OF}`,
  gptImage2Square: `OpenAI API pricing page (gpt-image-2, 1024x1024 per-image figure), ${AS_OF}; output tokens only`,
  gptImage2Tier: `estimate: output tokens of the dearest size in the pixel tier (OpenAI image-generation cost calculator formula) × $30 per million, OpenAI API pricing page (gpt-image-2), ${AS_OF}`,
  geminiFlash: `Gemini Developer API pricing page (gemini-2.5-flash-image: 1290 output tokens at $30 per million, $0.039 per image up to 1024x1024), ${AS_OF}`,
  geminiPro: `Gemini Developer API pricing page (gemini-3-pro-image-preview: $0.134 per 1K or 2K image), ${AS_OF}`,
  geminiPro4K: `Gemini Developer API pricing page (gemini-3-pro-image-preview: $0.24 per 4K image), ${AS_OF}`,
  geminiProGa:
    "Gemini API pricing (gemini-3-pro-image, GA 2026-05-28): $120 per million image output tokens, $0.134 per 1K or 2K image; checked 2026-12-03",
  geminiProGa4K:
    "Gemini API pricing (gemini-3-pro-image): $0.24 per 4K image (2000 output tokens); checked 2026-12-03",
  imagen4: `Gemini Developer API pricing page (Imagen 4 Standard, $0.04 per image), ${AS_OF}`,
  placeholder: "local test pattern drawn by the hub: no upstream cost",
  xaiImagine:
    "docs.x.ai/developers/model-capabilities/images ('Image Generation: $0.02 / image'); xAI OpenAPI spec (xai-org/xai-sdk-ts spec/openapi.json) GET /v1/models example: image_price 200000000 ticks; checked 2026-12-03",
  xaiImagineQuality:
    "estimate: $0.045 per image as LaoZhang API's launch notice quotes it (docs.laozhang.ai/announcements/grok-imagine-2-2026-08, 2026-08-13); xAI's own figure not found; checked 2026-12-03",
  xaiImagine2:
    "estimate: 1k low $0.04, medium $0.06 per image, from APIMart's resale prices (1K@low $0.032, 1K@medium $0.048, 2026-10-12) and BlockRun's $0.06 for medium (2026-11-05); xAI's own table not found; checked 2026-12-03",
  xaiRetired: "retired upstream; priced as the successor that serves it; checked 2026-12-03",
  openrouter:
    "OpenRouter Image API docs (openrouter.ai/docs/guides/overview/multimodal/image-generation) and model pages; provider list prices passed through; checked 2026-12-03",
  openrouterGemini:
    "estimate: Google's image-output token price assumed passed through by OpenRouter (its model pages show text rates only); checked 2026-12-03",
  stability:
    "Stability AI platform pricing (platform.stability.ai/pricing, as copied by developer.puter.com, June 2026): credits per image, 1 credit = $0.01; checked 2026-12-03",
  stabilityFlash:
    "estimate: Stability AI platform pricing: SD 3.5 Flash 2.5 credits, as cited by public client code (no stored copy of the page itself); checked 2026-12-03",
  ideogram:
    "Ideogram API pricing (ideogram.ai/features/api-pricing, revised 2025-08-06, as copied by developer.puter.com June 2026; default confirmed by Ideogram's dry_run quote of 2026-10-10): per output image by rendering speed; checked 2026-12-03",
  fal: "fal model pages (fal.ai/models/<id>/llms.txt): price per output megapixel, rounded up; checked 2026-12-03",
  falFlux2Pro:
    "estimate: FLUX.2 [pro] on fal, $0.03 the first megapixel (BFL's pricing page and public fal price tables; fal's own page not stored); checked 2026-12-03",
  bfl: "Black Forest Labs pricing (docs.bfl.ai/quick_start/pricing; github.com/black-forest-labs/skills bfl-api/SKILL.md): credits per image, 1 credit = $0.01; checked 2026-12-03",
  bflFlux2:
    "Black Forest Labs FLUX.2 megapixel pricing (github.com/black-forest-labs/skills bfl-api/SKILL.md, Jan 2026; developer.puter.com flux-api-pricing, Jun 2026): first MP + each further MP, priced at each pixel tier's largest image; input images of edits not included; checked 2026-12-03",
  replicate:
    "Replicate official-model pricing, per output image (model pages on replicate.com, as copied by cinemasetfree.com, lumenfall.ai and eachlabs.ai, 2026); checked 2026-12-03",
  comfyui:
    "self-hosted ComfyUI server (the operator's GPU): no upstream cost; set a price to recover it; checked 2026-12-03",
  azure:
    "estimate: Azure OpenAI Global Standard assumed at OpenAI's list price (Azure's pricing page shows no figures in any stored copy; Data Zone deployments cost 10 to 20 % more), checked 2026-12-03",
  a1111:
    "self-hosted AUTOMATIC1111/Forge server (the operator's GPU): no upstream cost; set a price to recover it; checked 2026-12-03",
} as const;

export const SEED_IMAGE_PRICES: ImagePrice[] = [
  // DALL·E 2 has one quality, so its price depends on the size only.
  price("dall-e-2", "256x256", "*", 16_000, SOURCES.dallE2),
  price("dall-e-2", "512x512", "*", 18_000, SOURCES.dallE2),
  price("dall-e-2", "1024x1024", "*", 20_000, SOURCES.dallE2),

  price("dall-e-3", "1024x1024", "standard", 40_000, SOURCES.dallE3),
  price("dall-e-3", "1024x1024", "hd", 80_000, SOURCES.dallE3),
  price("dall-e-3", "1024x1024", "*", 80_000, SOURCES.dallE3Unnamed),
  ...["1792x1024", "1024x1792"].flatMap((size) => [
    price("dall-e-3", size, "standard", 80_000, SOURCES.dallE3),
    price("dall-e-3", size, "hd", 120_000, SOURCES.dallE3),
    price("dall-e-3", size, "*", 120_000, SOURCES.dallE3Unnamed),
  ]),

  ...gptImage1Family(
    "gpt-image-1",
    [11_000, 42_000, 167_000],
    [16_000, 63_000, 250_000],
    SOURCES.gptImage1,
  ),
  ...gptImage1Family(
    "gpt-image-1-mini",
    [5_000, 11_000, 36_000],
    [6_000, 15_000, 52_000],
    SOURCES.gptImage1Mini,
  ),
  ...gptImage1Family(
    "gpt-image-1.5",
    [9_000, 34_000, 133_000],
    [13_000, 50_000, 200_000],
    SOURCES.gptImage15,
  ),
  // `auto` may pick any size, so it is priced as the largest tier.
  ...gptImageRows(
    "gpt-image-2",
    GPT_IMAGE_2_TIERS,
    GPT_IMAGE_2_TIERS["<=3840x2160"] as ByQuality,
    (size) => (size === "<=1024x1024" ? SOURCES.gptImage2Square : SOURCES.gptImage2Tier),
  ),

  price("gemini-2.5-flash-image", "*", "*", 39_000, SOURCES.geminiFlash),

  price("gemini-3-pro-image-preview", "*", "*", 134_000, SOURCES.geminiPro),
  ...GEMINI_PRO_4K_SIZES.map((size) =>
    price("gemini-3-pro-image-preview", size, "*", 240_000, SOURCES.geminiPro4K),
  ),

  price("gemini-3-pro-image", "*", "*", 134_000, SOURCES.geminiProGa),
  ...GEMINI_PRO_4K_SIZES.map((size) =>
    price("gemini-3-pro-image", size, "*", 240_000, SOURCES.geminiProGa4K),
  ),

  price("imagen-4.0-generate-001", "*", "*", 40_000, SOURCES.imagen4),

  price("local/placeholder", "*", "*", 0, SOURCES.placeholder),

  price("a1111/sd-checkpoint", "*", "*", 0, SOURCES.a1111),

  // xAI bills per image, at 1k sizes only; Grok Imagine 2 by quality (medium when none is named).
  price("grok-imagine-image", "*", "*", 20_000, SOURCES.xaiImagine),
  price("grok-imagine-image-quality", "*", "*", 45_000, SOURCES.xaiImagineQuality),
  price("grok-imagine-image-2.0", "*", "low", 40_000, SOURCES.xaiImagine2),
  price("grok-imagine-image-2.0", "*", "medium", 60_000, SOURCES.xaiImagine2),
  price("grok-imagine-image-2.0", "*", "*", 60_000, SOURCES.xaiImagine2),
  price("grok-imagine-image-pro", "*", "*", 45_000, SOURCES.xaiRetired),
  price("grok-2-image-1212", "*", "*", 20_000, SOURCES.xaiRetired),

  // OpenRouter passes its providers' list prices through; Gemini by size tier (1K is `*`).
  price("openrouter/gemini-3.1-flash-image", "*", "*", 67_000, SOURCES.openrouterGemini),
  ...scaledGemini3(2).map((size) =>
    price("openrouter/gemini-3.1-flash-image", size, "*", 101_000, SOURCES.openrouterGemini),
  ),
  ...scaledGemini3(4).map((size) =>
    price("openrouter/gemini-3.1-flash-image", size, "*", 151_000, SOURCES.openrouterGemini),
  ),
  price("openrouter/gemini-3-pro-image", "*", "*", 134_000, SOURCES.openrouterGemini),
  ...scaledGemini3(4).map((size) =>
    price("openrouter/gemini-3-pro-image", size, "*", 240_000, SOURCES.openrouterGemini),
  ),
  // OpenRouter's gpt-image-2 takes no `auto` size, so it has no `auto` rows.
  ...gptImageRows(
    "openrouter/gpt-image-2",
    GPT_IMAGE_2_TIERS,
    GPT_IMAGE_2_TIERS["<=3840x2160"] as ByQuality,
    () => SOURCES.openrouter,
  ).filter((row) => row.size !== "auto"),

  // Stability bills credits per image ($0.01 a credit), whatever the size.
  price("stable-image-ultra", "*", "*", 80_000, SOURCES.stability),
  price("stable-image-core", "*", "*", 30_000, SOURCES.stability),
  price("sd3.5-large", "*", "*", 65_000, SOURCES.stability),
  price("sd3.5-large-turbo", "*", "*", 40_000, SOURCES.stability),
  price("sd3.5-medium", "*", "*", 35_000, SOURCES.stability),
  price("sd3.5-flash", "*", "*", 25_000, SOURCES.stabilityFlash),
  price("sd3-large", "*", "*", 65_000, SOURCES.stability),
  price("sd3-large-turbo", "*", "*", 40_000, SOURCES.stability),
  price("sd3-medium", "*", "*", 35_000, SOURCES.stability),

  // Ideogram bills per image by rendering speed (the hub's quality). A lookup with no quality
  // is priced as the dearest, as for every model: what a reservation must cover.
  price("ideogram-3", "*", "turbo", 30_000, SOURCES.ideogram),
  price("ideogram-3", "*", "default", 60_000, SOURCES.ideogram),
  price("ideogram-3", "*", "quality", 90_000, SOURCES.ideogram),
  price("ideogram-3", "*", "*", 90_000, SOURCES.ideogram),

  // fal bills per output megapixel: every size it lists here is one.
  price("fal-ai/flux/schnell", "*", "*", 3_000, SOURCES.fal),
  price("fal-ai/flux/dev", "*", "*", 25_000, SOURCES.fal),
  price("fal-ai/flux-2-pro", "*", "*", 30_000, SOURCES.falFlux2Pro),

  // Black Forest Labs: FLUX.2 by the megapixel (each tier at its largest), the rest per image.
  ...(
    [
      ["flux-2-pro", 30_729, 38_593, 77_915],
      ["flux-2-max", 71_458, 87_186, 165_830],
      ["flux-2-flex", 52_429, 78_644, 209_716],
      ["flux-2-klein-9b", 15_098, 16_146, 21_389],
      ["flux-2-klein-4b", 14_049, 14_573, 17_195],
    ] as const
  ).flatMap(([model, oneMp, wide, large]) => [
    price(model, "<=1024x1024", "*", oneMp, SOURCES.bflFlux2),
    price(model, "<=1536x1024", "*", wide, SOURCES.bflFlux2),
    price(model, "<=2048x2048", "*", large, SOURCES.bflFlux2),
  ]),
  price("flux-kontext-pro", "*", "*", 40_000, SOURCES.bfl),
  price("flux-kontext-max", "*", "*", 80_000, SOURCES.bfl),
  price("flux-pro-1.1", "*", "*", 40_000, SOURCES.bfl),
  price("flux-pro-1.1-ultra", "*", "*", 60_000, SOURCES.bfl),

  price("replicate/flux-schnell", "*", "*", 3_000, SOURCES.replicate),
  price("replicate/flux-1.1-pro", "*", "*", 40_000, SOURCES.replicate),
  price("replicate/ideogram-v3-turbo", "*", "*", 30_000, SOURCES.replicate),
  price("comfyui/sdxl", "*", "*", 0, SOURCES.comfyui),

  // Azure OpenAI: OpenAI's models as deployments, priced as OpenAI lists them (an estimate).
  ...gptImageRows(
    "azure/gpt-image-2",
    GPT_IMAGE_2_TIERS,
    GPT_IMAGE_2_TIERS["<=3840x2160"] as ByQuality,
    () => SOURCES.azure,
  ),
  ...gptImage1Family(
    "azure/gpt-image-1.5",
    [9_000, 34_000, 133_000],
    [13_000, 50_000, 200_000],
    SOURCES.azure,
  ),
  ...gptImage1Family(
    "azure/gpt-image-1-mini",
    [5_000, 11_000, 36_000],
    [6_000, 15_000, 52_000],
    SOURCES.azure,
  ),
  ...gptImage1Family(
    "azure/gpt-image-1",
    [11_000, 42_000, 167_000],
    [16_000, 63_000, 250_000],
    SOURCES.azure,
  ),
];

function tokenPrice(
  model: string,
  textInputPerMillion: number,
  imageInputPerMillion: number,
  outputPerMillion: number,
  source: string,
): TokenPrice {
  return {
    model,
    textInputPerMillion,
    imageInputPerMillion,
    outputPerMillion,
    source,
    updatedAt: 0,
  };
}

/**
 * USD per million tokens for the models OpenAI bills by token. The per-image rows above are what
 * a request reserves; when the upstream reports usage, these settle what it actually cost.
 * Gemini models report usage too but Google lists them per image, so they settle per image.
 */
export const SEED_TOKEN_PRICES: TokenPrice[] = [
  tokenPrice(
    "gpt-image-1",
    5,
    10,
    40,
    `OpenAI model page gpt-image-1, ${AS_OF} (last published figure; the model was shut down upstream on 2026-10-23)`,
  ),
  tokenPrice("gpt-image-1-mini", 2, 2.5, 8, `OpenAI model page gpt-image-1-mini, ${AS_OF}`),
  tokenPrice("gpt-image-1.5", 5, 8, 32, `OpenAI model page gpt-image-1.5, ${AS_OF}`),
  tokenPrice("gpt-image-2", 5, 8, 30, `OpenAI API pricing page (gpt-image-2), ${AS_OF}`),
  tokenPrice("openrouter/gpt-image-2", 5, 8, 30, SOURCES.openrouter),
  tokenPrice("azure/gpt-image-2", 5, 8, 30, SOURCES.azure),
  tokenPrice("azure/gpt-image-1.5", 5, 8, 32, SOURCES.azure),
  tokenPrice("azure/gpt-image-1-mini", 2, 2.5, 8, SOURCES.azure),
  tokenPrice("azure/gpt-image-1", 5, 10, 40, SOURCES.azure),
];
