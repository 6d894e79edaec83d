/**
 * What a request may cost (reserved before any upstream call) and what it did cost (settled
 * after). Pure arithmetic over a price book; amounts are whole micro-dollars.
 */
import type { ImageJob } from "../images/plan.ts";
import type { TokenUsage } from "../providers/types.ts";
import type { PriceBook } from "./prices.ts";

export type CostedJob = Pick<ImageJob, "model" | "n" | "size" | "quality"> &
  Partial<Pick<ImageJob, "prompt" | "images" | "mask" | "calls">>;

/**
 * Input tokens one input image may take, for reserving an edit on a token-billed model: a
 * high-fidelity 2048-pixel input is a few thousand tokens. Generous on purpose: what is not
 * used goes back when the request settles.
 */
const INPUT_IMAGE_TOKEN_ALLOWANCE = 6_000;

/**
 * The most the job may cost: n images at the per-image price of its size and quality (the
 * dearest option where the model picks, see price-list.ts). This is what a request reserves.
 * Undefined when the book has no price for the job (an admin deleted the row): the caller
 * decides what that means (accounting.ts refuses a key with a balance, skips a fallback).
 *
 * @example maxCostMicros(jobOf("dall-e-3", 3, "1792x1024", "hd"), book) // 360000
 */
export function maxCostMicros(job: CostedJob, book: PriceBook): number | undefined {
  const price = book.perImageMicros(job.model.id, job.size, job.quality);
  if (price === undefined) return undefined;
  return price * job.n + inputAllowanceMicros(job, book);
}

/**
 * Token-billed models also charge for their input, and each upstream call sends the prompt and
 * the input images again. Reserving only the images' price would cap the charge for a large
 * edit below its real cost.
 */
function inputAllowanceMicros(job: CostedJob, book: PriceBook): number {
  const tokens = book.tokenPrice(job.model.id);
  if (!tokens) return 0;
  const calls = job.calls?.length ?? 1;
  const promptTokens = Math.ceil((job.prompt?.length ?? 0) / 2);
  const imageCount = (job.images?.length ?? 0) + (job.mask === undefined ? 0 : 1);
  const micros =
    calls *
    (promptTokens * tokens.textInputPerMillion +
      imageCount * INPUT_IMAGE_TOKEN_ALLOWANCE * tokens.imageInputPerMillion);
  return Math.ceil(micros);
}

export interface ChargeInput {
  job: CostedJob;
  /** Images the client actually receives. */
  delivered: number;
  /** Token usage summed over the upstream calls, where the upstream reports it. */
  usage: TokenUsage | undefined;
  /**
   * What the request reserved: the most it may be charged, so the balance stays at or above
   * zero. A key without a balance limit reserves nothing: pass `Number.POSITIVE_INFINITY`.
   */
  reservedMicros: number;
  book: PriceBook;
}

/**
 * What to charge for the images delivered. Models with a token price and reported usage are
 * charged for their tokens (text input, image input and output at their prices per million;
 * input that the upstream does not split is charged at the text price); other models are
 * charged the per-image price for each delivered image. The result is rounded to whole micros
 * once, at the end, and never exceeds the reservation. Nothing delivered costs nothing.
 *
 * @example chargeMicros({ job, delivered: 2, usage: undefined, reservedMicros: 360_000, book })
 */
export function chargeMicros({ job, delivered, usage, reservedMicros, book }: ChargeInput): number {
  if (delivered <= 0) return 0;
  const cap = Math.max(0, reservedMicros);
  const tokenPrice = book.tokenPrice(job.model.id);
  let cost: number;
  if (tokenPrice && usage) {
    const { textTokens, imageTokens } = splitInput(usage);
    // USD per million tokens is micro-dollars per token.
    cost =
      textTokens * tokenPrice.textInputPerMillion +
      imageTokens * tokenPrice.imageInputPerMillion +
      usage.outputTokens * tokenPrice.outputPerMillion;
  } else {
    const price = book.perImageMicros(job.model.id, job.size, job.quality);
    if (price !== undefined) cost = price * delivered;
    // A price row removed after reserving: charge the reserved share of each delivered image
    // rather than fail a request whose images the client already has; with no reservation to
    // go by (a key without a limit), charge nothing rather than guess.
    else cost = Number.isFinite(cap) ? (cap * delivered) / job.n : 0;
  }
  return Math.min(Math.max(0, Math.round(cost)), cap);
}

function splitInput(usage: TokenUsage): { textTokens: number; imageTokens: number } {
  const { inputTokens, inputTextTokens, inputImageTokens } = usage;
  if (inputTextTokens === undefined && inputImageTokens === undefined) {
    return { textTokens: inputTokens, imageTokens: 0 };
  }
  const imageTokens = inputImageTokens ?? Math.max(0, inputTokens - (inputTextTokens ?? 0));
  const textTokens = inputTextTokens ?? Math.max(0, inputTokens - imageTokens);
  return { textTokens, imageTokens };
}
