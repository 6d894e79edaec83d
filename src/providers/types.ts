/**
 * The provider seam: one normalised call in, images out. A provider knows its upstream API and
 * nothing of ours beyond these types: not routes, not our clients' keys, not billing or storage.
 *
 * Every setting is always passed, even as `undefined`, so that an adapter cannot silently miss
 * one (the habit of the Vercel AI SDK's image-model contract).
 */
import type { Dispatcher } from "undici";
import type { ByteBudget } from "../net/byte-budget.ts";
import type { Base64 } from "./base64.ts";

export type ImageMimeType = "image/png" | "image/jpeg" | "image/webp";
export type OutputFormat = "png" | "jpeg" | "webp";

/** An input image for editing, already fetched, checked and decoded once by images/inputs. */
export interface InputImage {
  bytes: Buffer;
  mimeType: ImageMimeType;
  width: number;
  height: number;
}

export interface ProviderCall {
  /** The model id the upstream knows (the catalog's `upstreamId`). */
  model: string;
  prompt: string;
  /** How many images this one call must make; never more than the model's `maxPerCall`. */
  count: number;
  /** `WxH` as validated against the catalog, or undefined to let the model choose. */
  size: `${number}x${number}` | undefined;
  quality: string | undefined;
  style: string | undefined;
  /** GPT image options. */
  background: "transparent" | "opaque" | "auto" | undefined;
  outputFormat: OutputFormat | undefined;
  outputCompression: number | undefined;
  moderation: "low" | "auto" | undefined;
  /** Input images; non-empty means an edit. */
  images: InputImage[];
  mask: InputImage | undefined;
  /** The end user the client named, passed on where the upstream takes it (abuse monitoring). */
  user: string | undefined;
  /**
   * Vendor options beyond OpenAI's (`negative_prompt`, `seed`, `aspect_ratio`, `steps`, …), by
   * the vendor's own names, as the client sent them in `extra`; only those the catalog declares
   * for the model reach here. Undefined when none.
   */
  extra: Readonly<Record<string, unknown>> | undefined;
  /**
   * The model's request template from the catalog (`request_template`), for APIs whose model is
   * a document of its own: a ComfyUI workflow with placeholders. Undefined for most models.
   */
  template: Readonly<Record<string, unknown>> | undefined;
  signal: AbortSignal;
  /** This call's time budget (the model's, see the catalog); the provider's default if unset. */
  timeoutMs?: number;
}

/**
 * One image as the upstream gave it. Base64 stays base64 text and bytes stay bytes: converting
 * megabytes per image is the main cost a gateway can add, so only the consumer converts, and
 * only when the client's response_format needs it.
 */
export type { Base64 } from "./base64.ts";

export type ProviderImage =
  | { kind: "base64"; base64: Base64; mimeType: ImageMimeType; revisedPrompt: string | undefined }
  | { kind: "bytes"; bytes: Buffer; mimeType: ImageMimeType; revisedPrompt: string | undefined }
  | { kind: "url"; url: string; revisedPrompt: string | undefined };

export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  totalTokens: number;
  /** Image tokens among the input tokens, where the upstream reports them apart. */
  inputImageTokens?: number;
  inputTextTokens?: number;
}

export interface ProviderResult {
  images: ProviderImage[];
  usage: TokenUsage | undefined;
  /** Hints the model could not honour (a style it has no notion of): reported, not thrown. */
  warnings: string[];
}

export interface ImageProvider {
  /** `openai`, `google`, `local`: the catalog's provider name. */
  readonly name: string;
  /**
   * Makes `call.count` images. Failures are thrown as `HubError` (see providers/upstream.ts),
   * and an aborted `call.signal` rejects promptly with the signal's reason.
   */
  generate(call: ProviderCall): Promise<ProviderResult>;
  /**
   * The models the upstream offers now (OpenAI GET /models, Gemini GET /v1beta/models), or
   * undefined on providers without a list (the built-in placeholder). Failures throw HubError.
   */
  listModels?(options: { signal: AbortSignal; timeoutMs: number }): Promise<UpstreamModel[]>;
}

/** One model as the upstream lists it. */
export interface UpstreamModel {
  /** The id the upstream takes in calls (Gemini's `models/` prefix removed). */
  id: string;
  /** `YYYY-MM-DD` when the upstream announces a shutdown date; null otherwise. */
  shutdownDate: string | null;
}

/** What every HTTP provider takes, so tests can point it at a loopback simulator. */
export interface HttpProviderOptions {
  apiKey: string;
  baseURL: string;
  /** The connection pool; undici's global dispatcher (keep-alive per origin) by default. */
  dispatcher?: Dispatcher;
  /** Bounds the reply bytes held at once across the process (see net/byte-budget.ts). */
  byteBudget?: ByteBudget;
  /** Upstream time budget for a call that names none, in milliseconds. */
  timeoutMs?: number;
  /** Largest upstream reply read, in bytes. */
  maxReplyBytes?: number;
}
