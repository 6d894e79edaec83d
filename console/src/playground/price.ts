/**
 * The price shown beside Generate, looked up in the model's `pricing.per_image` rows as the hub's
 * price book does: the size itself (`auto` when none), then its pixel tier (`<=WxH` rows), then
 * `*`; within each, the quality itself (`auto` when none), then `*`.
 */
import { usd } from "../components.tsx";
import type { ModelEntry, PriceRow } from "./types.ts";

export function unitPrice(
  model: ModelEntry,
  size: string,
  quality: string | undefined,
): number | undefined {
  const rows = model.pricing?.per_image ?? [];
  if (rows.length === 0) return undefined;
  const sizeKeys = [size || "auto"];
  const tier = tierOf(rows, size);
  if (tier) sizeKeys.push(tier);
  sizeKeys.push("*");
  for (const sizeKey of sizeKeys) {
    for (const qualityKey of [quality || "auto", "*"]) {
      const row = rows.find(
        (candidate) => candidate.size === sizeKey && candidate.quality === qualityKey,
      );
      if (row) return row.usd;
    }
  }
  return undefined;
}

export function priceText(
  model: ModelEntry,
  size: string,
  quality: string | undefined,
  n: number,
): string {
  const each = unitPrice(model, size, quality);
  if (each === undefined) return "price unknown";
  if (each === 0) return "free";
  return `≈ ${usd(each * n)} for ${n} ${n === 1 ? "image" : "images"}`;
}

function pixelsOf(size: string): number | undefined {
  const match = /^(?:<=)?(\d+)x(\d+)$/.exec(size);
  return match ? Number(match[1]) * Number(match[2]) : undefined;
}

/** The smallest `<=WxH` tier that holds the size's pixels. */
function tierOf(rows: readonly PriceRow[], size: string): string | undefined {
  const pixels = pixelsOf(size);
  if (pixels === undefined) return undefined;
  const tiers = [...new Set(rows.map((row) => row.size).filter((key) => key.startsWith("<=")))]
    .map((key) => ({ key, pixels: pixelsOf(key) ?? 0 }))
    .sort((a, b) => a.pixels - b.pixels);
  return tiers.find((tier) => pixels <= tier.pixels)?.key;
}
