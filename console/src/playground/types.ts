/**
 * What the playground reads from `GET /api/models`. Fields marked optional are newer than some
 * hubs (size_limits, typical_ms, mask, background, default_quality): the page works without them.
 */

export interface PriceRow {
  size: string;
  quality: string;
  usd: number;
}

/** The bounds of a model that takes any WxH; ratios as a number (w/h) or as "1:16". */
export interface SizeLimits {
  multiple_of: number;
  max_side: number;
  min_pixels: number;
  max_pixels: number;
  min_ratio: number | string;
  max_ratio: number | string;
  auto?: boolean;
}

export interface ModelEntry {
  id: string;
  description?: string;
  status: string;
  successor: string | null;
  shutdown_date: string | null;
  /** A fixed list of WxH (and `auto`); undefined for models with a rule. */
  sizes?: string[];
  size_rule?: string;
  size_limits?: SizeLimits | null;
  default_size: string;
  max_images: number;
  qualities: string[];
  default_quality?: string | null;
  styles: string[];
  default_style?: string | null;
  max_prompt_length: number;
  /** Whether the model takes input images at all. */
  edits: boolean;
  /** Whether an edit may carry a mask. */
  mask?: boolean;
  background?: boolean;
  output_formats: string[];
  /** The median time of recent successful requests, ms; null when unknown. */
  typical_ms?: number | null;
  pricing?: { currency: string; per_image: PriceRow[] };
}

/** An image to edit, decoded once so the mask can be drawn at its own size. */
export interface EditImage {
  blob: Blob;
  name: string;
  /** An object URL of `blob`, revoked when the image leaves the panel. */
  url: string;
  width: number;
  height: number;
}

/** Everything one request sends; kept whole so "Again" can send it once more. */
export interface JobSettings {
  model: string;
  prompt: string;
  n: number;
  size: string;
  quality?: string;
  style?: string;
  output_format?: string;
  background?: string;
  edit?: { image: Blob; name: string; mask: Blob | null };
}

export interface ImageReply {
  images: { url: string; revised_prompt?: string }[];
  /** The model that served the request (`X-Image-Hub-Model`); a retired one's successor. */
  model: string | null;
  recordId: string | null;
  warnings: string[];
  /** `X-Image-Hub-Partial`: fewer images than asked. */
  partial: string | null;
  /** `X-Image-Hub-Cost`: USD charged; undefined from a hub that does not say. */
  cost: number | undefined;
}

export interface Job {
  id: number;
  settings: JobSettings;
  /** Date.now() at the start. */
  startedAt: number;
  finishedAt?: number;
  typicalMs: number | null;
  state: "running" | "done" | "failed" | "cancelled";
  error?: unknown;
  reply?: ImageReply;
  /** USD charged (X-Image-Hub-Cost); undefined while unknown. */
  cost?: number;
}
