/**
 * Price rows held to the catalog. An admin's price for a size or quality the model does not
 * take, or a token price for a model whose upstream reports no tokens, could never apply: it
 * is refused (400 `price_not_applicable`, naming the field) rather than stored and ignored. And
 * after a row is removed, `unpricedRequests` says what the model can no longer be charged for.
 */

import { isPixelTier, PIXEL_TIERS } from "../billing/price-list.ts";
import type { PriceBook } from "../billing/prices.ts";
import { priceNotApplicable } from "../errors.ts";
import type { ModelSpec } from "./catalog.ts";
import { sizeAllowed } from "./model-fields.ts";
import { describeSizes } from "./plan.ts";

const ANY = "*";

/**
 * Checks a per-image price row's size and quality against the model. A size is `*` (any),
 * `auto` where the model takes it, one of the model's sizes, or for a model that takes any WxH
 * within a rule, a pixel tier `<=WxH`. A quality is `*` or one of the model's qualities.
 *
 * @example checkImagePriceTarget(dallE3, "1792x1024", "hd") // fine
 * @throws HubError 400 `price_not_applicable`, with `param` "size" or "quality".
 */
export function checkImagePriceTarget(model: ModelSpec, size: string, quality: string): void {
  if (!sizeTakes(model, size)) {
    const tiers = model.sizes.kind === "rule" ? ", a pixel tier '<=WxH'" : "";
    throw priceNotApplicable(
      `Invalid 'size': ${model.id} does not take '${size}', so a price for it would never ` +
        `apply. ${describeSizes(model.sizes)} Price one of those${tiers}, or '*' for any size.`,
      "size",
    );
  }
  if (quality !== ANY && !model.qualities.includes(quality)) {
    const qualities =
      model.qualities.length === 0
        ? `${model.id} has no quality setting, so use '*'.`
        : `Its qualities: ${model.qualities.join(", ")}, or '*' for any.`;
    throw priceNotApplicable(
      `Invalid 'quality': ${model.id} has no quality '${quality}', so a price for it would ` +
        `never apply. ${qualities}`,
      "quality",
    );
  }
}

/**
 * Checks that a token price can apply to the model: its upstream must report token usage, or
 * the request is always charged per image and the token price would only inflate reservations.
 *
 * @throws HubError 400 `price_not_applicable` with `param` "model".
 */
export function checkTokenPriceTarget(model: ModelSpec): void {
  if (reportsTokenUsage(model)) return;
  throw priceNotApplicable(
    `Invalid 'model': ${model.id} is billed per image (its upstream reports no token usage), ` +
      "so a token price would never apply. Set its price per image with PUT /api/admin/prices/image.",
    "model",
  );
}

/**
 * Whether the model's upstream reports the tokens a call used. The local placeholder makes no
 * upstream call; DALL·E answers without `usage`; Imagen (`:predict`) without `usageMetadata`
 * (providers/google.ts routes `imagen-*` ids there). GPT image models and Gemini report them.
 * xAI, Stability and AUTOMATIC1111 answer without token counts. A model on any other provider
 * (OpenRouter, Azure, an OpenAI-compatible server) is assumed to report them, as they may.
 */
function reportsTokenUsage(model: ModelSpec): boolean {
  switch (model.provider) {
    case "local":
      return false;
    case "openai":
      return !model.upstreamId.startsWith("dall-e-");
    case "google":
      return !model.upstreamId.startsWith("imagen-");
    // Billed per image by their vendors, with no token counts in the reply.
    case "xai":
    case "stability":
    case "a1111":
      return false;
    default:
      return true;
  }
}

function sizeTakes(model: ModelSpec, size: string): boolean {
  if (size === ANY) return true;
  if (isPixelTier(size)) {
    const match = /^<=([1-9]\d*)x([1-9]\d*)$/.exec(size);
    return model.sizes.kind === "rule" && match !== null;
  }
  return sizeAllowed(model.sizes, size);
}

/**
 * The requests of `model` the book has no price for: each size it lists (for a model priced
 * by rule, its default size and each pixel tier's own size) and `auto` where it takes it, at
 * each of its qualities. Empty when every such request is priced. A key with a balance gets
 * 400 `model_not_priced` for these; a key without a limit is served and charged 0.
 *
 * @example unpricedRequests(dallE2, book) // [{ size: "512x512", quality: "standard" }]
 */
export function unpricedRequests(
  model: ModelSpec,
  book: PriceBook,
): { size: string; quality: string | null }[] {
  const sizes = new Set<string>();
  if (model.sizes.kind === "list") {
    for (const size of model.sizes.sizes) sizes.add(size);
  } else {
    sizes.add(model.defaultSize);
    const tiers = [
      ...PIXEL_TIERS.map((tier) => tier.key),
      ...(book.describe(model.id)?.per_image.map((row) => row.size) ?? []),
    ].filter(isPixelTier);
    for (const tier of tiers) {
      const size = tier.slice(2);
      if (sizeAllowed(model.sizes, size)) sizes.add(size);
    }
  }
  if (model.sizes.auto) sizes.add("auto");
  const qualities: (string | undefined)[] =
    model.qualities.length === 0 ? [undefined] : [...model.qualities];
  const missing: { size: string; quality: string | null }[] = [];
  for (const size of sizes) {
    for (const quality of qualities) {
      if (book.perImageMicros(model.id, size, quality) === undefined) {
        missing.push({ size, quality: quality ?? null });
      }
    }
  }
  return missing;
}
