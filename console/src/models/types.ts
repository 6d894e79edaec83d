/** The catalog and the provider credentials as the admin API gives them, and their wording. */
import { usd } from "../components.tsx";

export interface PriceRow {
  size: string;
  quality: string;
  usd: number;
}

export interface Pricing {
  per_image?: PriceRow[];
  per_million_tokens?: { text_input: number; image_input: number; output: number };
}

export interface SizeRule {
  multiple_of: number;
  max_side: number;
  min_pixels?: number;
  max_pixels?: number;
  min_ratio?: number | string;
  max_ratio?: number | string;
  auto?: boolean;
}

export interface CatalogModel {
  id: string;
  provider: string;
  description?: string;
  kind?: string;
  status: "active" | "deprecated" | "retired";
  shutdown_date?: string | null;
  successor?: string | null;
  use_successor?: boolean;
  configured: boolean;
  sizes?: string[] | SizeRule;
  qualities?: string[];
  max_per_call?: number;
  edits?: false | { max_images: number; mask: boolean };
  output_formats?: string[];
  aliases?: string[];
  origin: string;
  source?: string | null;
  checked?: string | null;
  pricing: Pricing | null;
  warnings: string[];
}

export type CredentialStatus =
  | "active"
  | "cooling_down"
  | "auth_failed"
  | "disabled"
  | "undecryptable";

export interface Credential {
  id: string;
  provider: string;
  name: string;
  key: string;
  base_url: string | null;
  weight: number;
  disabled: boolean;
  source: "environment" | "database";
  status: CredentialStatus;
  status_detail: string | null;
  last_error: string | null;
  status_since: number | null;
  status_until: number | null;
  created_at: number | null;
}

export interface CredentialTest {
  id: string;
  object: "credential_test";
  /** null: the provider has no free call to test with. */
  ok: boolean | null;
  latency_ms: number | null;
  detail: string | null;
  status: CredentialStatus;
}

/**
 * "$0.011–$0.25 per image", "free", and "+ tokens" where the model bills tokens too (`short`,
 * the details give the token prices) or the token prices themselves.
 */
export function priceSummary(pricing: Pricing | null, short = true): string {
  if (!pricing) return "no price";
  const parts: string[] = [];
  const prices = (pricing.per_image ?? []).map((row) => row.usd);
  if (prices.length > 0) {
    const low = Math.min(...prices);
    const high = Math.max(...prices);
    if (high === 0) parts.push("free");
    else parts.push(low === high ? `${usd(low)} per image` : `${usd(low)}–${usd(high)} per image`);
  }
  const tokens = pricing.per_million_tokens;
  if (tokens && short) return parts.length === 0 ? "per token" : `${parts.join("")} + tokens`;
  if (tokens) parts.push(`tokens ${usd(tokens.text_input)} in, ${usd(tokens.output)} out per 1M`);
  return parts.length === 0 ? "no price" : parts.join("; ");
}

const count = (value: number) => value.toLocaleString("en-US");

/** A size rule in words; `short` for the catalog's one-line rows. */
export function sizeText(sizes: CatalogModel["sizes"], short = false): string {
  if (!sizes) return "—";
  if (Array.isArray(sizes)) {
    if (!short || sizes.length <= 3) return sizes.join(", ");
    return `${sizes.slice(0, 3).join(", ")} +${sizes.length - 3}`;
  }
  if (short) {
    return `any WxH${sizes.multiple_of > 1 ? ` ×${sizes.multiple_of}` : ""} up to ${sizes.max_side}`;
  }
  const parts = [
    sizes.multiple_of > 1 ? `any WxH in multiples of ${sizes.multiple_of}` : "any WxH",
    `longest side ${count(sizes.max_side)}`,
  ];
  if (sizes.min_pixels || sizes.max_pixels) {
    parts.push(`${count(sizes.min_pixels ?? 1)} to ${count(sizes.max_pixels ?? 0)} pixels`);
  }
  if (sizes.min_ratio || sizes.max_ratio) {
    parts.push(`ratio ${sizes.min_ratio ?? "any"} to ${sizes.max_ratio ?? "any"}`);
  }
  if (sizes.auto) parts.push("or auto");
  return parts.join(", ");
}

/** A time of day, for a cool-down's end. */
export function clock(seconds: number): string {
  return new Date(seconds * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}
