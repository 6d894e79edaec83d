/**
 * The price book: a lookup over the price rows the database holds (seeded from price-list.ts,
 * edited by admins). Pure: build it from rows, ask it questions; rebuild it when rows change.
 */
import type { ImagePrice, TokenPrice } from "../storage/db/types.ts";
import { microsToUsd } from "./money.ts";
import { isPixelTier, pixelsOf } from "./price-list.ts";

/** What `GET /api/models` shows of a model's price. */
export interface ModelPricing {
  currency: "USD";
  /** One entry per price row; `*` means any size or quality, `auto` the model's own choice. */
  per_image: { size: string; quality: string; usd: number }[];
  /** USD per million tokens, for models billed by token when the upstream reports usage. */
  per_million_tokens?: { text_input: number; image_input: number; output: number };
}

export interface PriceBook {
  /**
   * The price of one image, in micro-dollars, or undefined when no row matches. The most
   * specific row wins: the size itself, then its pixel tier (models priced by tier), then `*`;
   * within each, the quality itself, then `*`. A size of undefined (or "auto") is looked up as
   * `auto`, and so is a quality of undefined.
   */
  perImageMicros(
    model: string,
    size: string | undefined,
    quality: string | undefined,
  ): number | undefined;
  tokenPrice(model: string): TokenPrice | undefined;
  /** Undefined when the book knows no price at all for the model. */
  describe(model: string): ModelPricing | undefined;
}

const AUTO = "auto";
const ANY = "*";

/**
 * Builds the lookup. A later row for the same model, size and quality replaces an earlier one.
 *
 * @example
 * const book = createPriceBook(SEED_IMAGE_PRICES, SEED_TOKEN_PRICES);
 * book.perImageMicros("dall-e-3", "1792x1024", "hd"); // 120000
 */
export function createPriceBook(
  images: readonly ImagePrice[],
  tokens: readonly TokenPrice[],
): PriceBook {
  const rowsByModel = new Map<string, Map<string, ImagePrice>>();
  for (const row of images) {
    let rows = rowsByModel.get(row.model);
    if (!rows) {
      rows = new Map();
      rowsByModel.set(row.model, rows);
    }
    rows.set(keyOf(row.size, row.quality), row);
  }
  const tokensByModel = new Map(tokens.map((price) => [price.model, price]));
  // Models priced by pixel tier (gpt-image-2 takes any WxH): their tiers, fewest pixels first.
  const tiersByModel = new Map<string, { key: string; pixels: number }[]>();
  for (const [model, rows] of rowsByModel) {
    const tiers = [...new Set([...rows.values()].map((row) => row.size))]
      .filter(isPixelTier)
      .map((key) => ({ key, pixels: pixelsOf(key) ?? 0 }))
      .sort((a, b) => a.pixels - b.pixels);
    if (tiers.length > 0) tiersByModel.set(model, tiers);
  }

  return {
    perImageMicros(model, size, quality) {
      const rows = rowsByModel.get(model);
      if (!rows) return undefined;
      const sizeKey = size === undefined || size === AUTO ? AUTO : size;
      const sizeKeys = [sizeKey];
      const tier = sizeKey === AUTO ? undefined : tierOf(tiersByModel.get(model), sizeKey);
      if (tier !== undefined) sizeKeys.push(tier);
      sizeKeys.push(ANY);
      const qualityKeys = [quality ?? AUTO, ANY];
      for (const candidateSize of sizeKeys) {
        for (const candidateQuality of qualityKeys) {
          const row = rows.get(keyOf(candidateSize, candidateQuality));
          if (row) return row.microsPerImage;
        }
      }
      return undefined;
    },

    tokenPrice: (model) => tokensByModel.get(model),

    describe(model) {
      const rows = rowsByModel.get(model);
      const token = tokensByModel.get(model);
      if (!rows && !token) return undefined;
      const pricing: ModelPricing = {
        currency: "USD",
        per_image: [...(rows?.values() ?? [])].map((row) => ({
          size: row.size,
          quality: row.quality,
          usd: microsToUsd(row.microsPerImage),
        })),
      };
      if (token) {
        pricing.per_million_tokens = {
          text_input: token.textInputPerMillion,
          image_input: token.imageInputPerMillion,
          output: token.outputPerMillion,
        };
      }
      return pricing;
    },
  };
}

/** The first of a model's tiers that holds `size`'s pixels. */
function tierOf(
  tiers: readonly { key: string; pixels: number }[] | undefined,
  size: string,
): string | undefined {
  const pixels = pixelsOf(size);
  if (!tiers || pixels === undefined) return undefined;
  return tiers.find((tier) => pixels <= tier.pixels)?.key;
}

function keyOf(size: string, quality: string): string {
  return `${size}\n${quality}`;
}
