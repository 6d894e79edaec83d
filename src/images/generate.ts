/**
 * The image pipeline, one request end to end: plan → inputs → provider calls (fanned out) →
 * results (base64 as is, or hosted behind a signed URL) → one usage record. Routes call this and
 * shape the reply; everything with I/O in it arrives through `ImageServiceDeps`, so tests can
 * run it without HTTP.
 *
 * Partial success: when some upstream calls fail and others make images, the client gets the
 * images that exist (200, fewer items in `data`, `partial` set), and only those are counted as
 * delivered. Failing the whole request would throw away images the provider already made and
 * charged for. Only when no call makes an image does the request fail, with the most telling
 * error (a content-policy refusal over a transient fault).
 */
import { randomUUID } from "node:crypto";
import type { Principal } from "../auth/principal.ts";
import type { Accounting } from "../billing/accounting.ts";
import { type HubError, internalError, isHubError, upstreamFailed } from "../errors.ts";
import { sniffImageType } from "../image-formats.ts";
import type {
  Base64,
  ImageMimeType,
  ImageProvider,
  InputImage,
  ProviderImage,
  TokenUsage,
} from "../providers/types.ts";
import type { UsageRecord } from "../storage/db/types.ts";
import type { Catalog, ProviderName } from "./catalog.ts";
import { settleWithConcurrency } from "./fan-out.ts";
import { type ImageJob, type ImageJobRequest, type ImageSource, planImageJob } from "./plan.ts";

export interface ImageServiceDeps {
  catalog: Catalog;
  providers: Partial<Record<ProviderName, ImageProvider>>;
  defaultModel: string;
  fanOutConcurrency: number;
  /** Fetches (through the SSRF guard), decodes and checks input images. */
  loadInputs(sources: ImageSource[], param: string, signal: AbortSignal): Promise<InputImage[]>;
  /** Fetches an image an upstream answered with as a URL, so clients never depend on it. */
  fetchUpstreamImage(url: string, signal: AbortSignal): Promise<Buffer>;
  /** Stores an image and returns its signed, expiring URL. */
  hostImage(bytes: Buffer, mimeType: ImageMimeType): Promise<string>;
  /** Reserves credit before the provider is called; prices, settles and records at the end. */
  accounting: Accounting;
  /** Whether the key may run this job (its models, its rate limits); throws when not. */
  admit?(principal: Principal, job: ImageJob): void;
  clock?: () => number;
  log?: {
    warn(object: object, message: string): void;
    error(object: object, message: string): void;
  };
}

export interface GeneratedImageData {
  url?: string;
  /** As the provider gave it: a string, or its bytes (see providers/json-cut.ts). */
  b64_json?: Base64;
  revised_prompt?: string;
}

export interface GenerationResult {
  created: number;
  data: GeneratedImageData[];
  usage: { input_tokens: number; output_tokens: number; total_tokens: number } | undefined;
  /** Set when fewer images than asked could be made. */
  partial: { requested: number; delivered: number; errorCode: string } | undefined;
  warnings: string[];
  job: ImageJob;
  recordId: string;
}

export interface ImageService {
  generate(
    principal: Principal,
    request: ImageJobRequest,
    signal: AbortSignal,
  ): Promise<GenerationResult>;
  isProviderConfigured(provider: ProviderName): boolean;
}

export function createImageService(deps: ImageServiceDeps): ImageService {
  const clock = deps.clock ?? Date.now;
  const isProviderConfigured = (provider: ProviderName) => deps.providers[provider] !== undefined;

  async function generate(
    principal: Principal,
    request: ImageJobRequest,
    signal: AbortSignal,
  ): Promise<GenerationResult> {
    const startedAt = clock();
    const recordId = randomUUID();
    let job: ImageJob | undefined;
    let delivered = 0;
    let upstreamLatencyMs: number | null = null;
    let failure: HubError | undefined;
    let partialCode: string | undefined;
    let reservedMicros: number | null = null;
    let tokenUsage: TokenUsage | undefined;
    // A request the key's own limits refuse leaves no record: a client flooding the hub must
    // not cost a database write per refusal. Everything admitted is recorded, failures too.
    let admitted = false;
    try {
      job = planImageJob(deps.catalog, request, {
        defaultModel: deps.defaultModel,
        isProviderConfigured,
      });
      deps.admit?.(principal, job);
      admitted = true;
      signal.throwIfAborted();
      reservedMicros = await deps.accounting.reserve(principal, job, recordId, startedAt);
      const provider = deps.providers[job.model.provider] as ImageProvider;
      const [images, mask] = await Promise.all([
        deps.loadInputs(job.images, "image", signal),
        job.mask === undefined
          ? Promise.resolve(undefined)
          : deps.loadInputs([job.mask], "mask", signal).then((loaded) => loaded[0]),
      ]);

      const upstreamStartedAt = clock();
      const calls = await callProvider(provider, job, images, mask, signal);
      upstreamLatencyMs = clock() - upstreamStartedAt;
      // A client that has gone gets nothing stored or counted as delivered for it.
      signal.throwIfAborted();

      const made = calls.flatMap((call) => (call.status === "fulfilled" ? call.value.images : []));
      const errors = calls.flatMap((call) => (call.status === "rejected" ? [call.reason] : []));
      if (made.length === 0) throw mostTellingError(errors, signal);
      if (made.length < job.n) {
        partialCode = errors.length > 0 ? errorCodeOf(mostTellingError(errors, signal)) : undefined;
        partialCode ??= "fewer_images";
      }

      const data = await deliver(job, made, signal);
      delivered = data.length;
      const warnings = [
        ...job.warnings,
        ...calls.flatMap((call) => (call.status === "fulfilled" ? call.value.warnings : [])),
      ];
      for (const error of errors) {
        deps.log?.warn({ err: error, model: job.model.id }, "an upstream call of a fan-out failed");
      }
      tokenUsage = sumUsage(
        calls.flatMap((call) => (call.status === "fulfilled" ? [call.value.usage] : [])),
      );
      return {
        created: Math.floor(startedAt / 1000),
        data,
        usage: tokenUsage && {
          input_tokens: tokenUsage.inputTokens,
          output_tokens: tokenUsage.outputTokens,
          total_tokens: tokenUsage.totalTokens,
        },
        partial:
          partialCode === undefined
            ? undefined
            : { requested: job.n, delivered, errorCode: partialCode },
        warnings: [...new Set(warnings)],
        job,
        recordId,
      };
    } catch (error) {
      failure = isHubError(error) ? error : signal.aborted ? undefined : internalError(error);
      if (failure === undefined) throw error;
      throw failure;
    } finally {
      const record: Omit<UsageRecord, "costMicros"> = {
        id: recordId,
        keyId: principal.keyId,
        model: job?.model.id ?? request.model ?? deps.defaultModel,
        provider: job?.model.provider ?? "none",
        imagesRequested: job?.n ?? request.n ?? 1,
        imagesDelivered: delivered,
        size: job ? (job.size ?? "auto") : (request.size ?? null),
        quality: job?.quality ?? null,
        responseFormat: job?.responseFormat ?? request.response_format ?? "url",
        status: delivered === 0 ? "failed" : partialCode === undefined ? "succeeded" : "partial",
        errorCode: failure?.code ?? partialCode ?? (signal.aborted ? "client_disconnected" : null),
        latencyMs: clock() - startedAt,
        upstreamLatencyMs,
        inputTokens: tokenUsage?.inputTokens ?? null,
        outputTokens: tokenUsage?.outputTokens ?? null,
        createdAt: startedAt,
      };
      const refusedByLimits = job !== undefined && !admitted;
      if (!refusedByLimits) {
        await deps.accounting
          .record({ record, job, usage: tokenUsage, reservedMicros })
          .catch((error: unknown) => {
            // The reservation stays open and is released by the next start's recovery.
            deps.log?.error({ err: error, recordId }, "could not write the usage record");
          });
      }
    }
  }

  async function callProvider(
    provider: ImageProvider,
    job: ImageJob,
    images: InputImage[],
    mask: InputImage | undefined,
    signal: AbortSignal,
  ) {
    return settleWithConcurrency(job.calls, deps.fanOutConcurrency, (count) => {
      signal.throwIfAborted();
      return provider.generate({
        model: job.model.upstreamId,
        prompt: job.prompt,
        count,
        size: job.size,
        quality: job.quality,
        style: job.style,
        background: job.background,
        outputFormat: job.outputFormat,
        outputCompression: job.outputCompression,
        moderation: job.moderation,
        images,
        mask,
        user: job.user,
        signal,
      });
    });
  }

  /** Turns provider images into what the client asked for, converting only when it must. */
  async function deliver(
    job: ImageJob,
    images: ProviderImage[],
    signal: AbortSignal,
  ): Promise<GeneratedImageData[]> {
    return Promise.all(
      images.map(async (image) => {
        const revised = image.revisedPrompt ? { revised_prompt: image.revisedPrompt } : {};
        if (job.responseFormat === "b64_json") {
          if (image.kind === "base64") return { b64_json: image.base64, ...revised };
          const { bytes } = await bytesOf(image, signal);
          return { b64_json: bytes.toString("base64"), ...revised };
        }
        const { bytes, mimeType } = await bytesOf(image, signal);
        return { url: await deps.hostImage(bytes, mimeType), ...revised };
      }),
    );
  }

  async function bytesOf(
    image: ProviderImage,
    signal: AbortSignal,
  ): Promise<{ bytes: Buffer; mimeType: ImageMimeType }> {
    if (image.kind === "base64") {
      const text =
        typeof image.base64 === "string" ? image.base64 : image.base64.toString("latin1");
      return { bytes: Buffer.from(text, "base64"), mimeType: image.mimeType };
    }
    if (image.kind === "bytes") return { bytes: image.bytes, mimeType: image.mimeType };
    const bytes = await deps.fetchUpstreamImage(image.url, signal);
    const mimeType = sniffImageType(bytes);
    if (!mimeType) {
      throw upstreamFailed("The upstream answered with a URL that does not hold an image.", {
        code: "upstream_invalid_response",
      });
    }
    return { bytes, mimeType };
  }

  return { generate, isProviderConfigured };
}

/** Content-policy refusals explain most to the client; then the first error as it came. */
function mostTellingError(errors: unknown[], signal: AbortSignal): unknown {
  if (signal.aborted) return signal.reason;
  const policy = errors.find(
    (error) => isHubError(error) && error.code === "content_policy_violation",
  );
  return policy ?? errors.find(isHubError) ?? errors[0] ?? internalError();
}

function errorCodeOf(error: unknown): string | undefined {
  return isHubError(error) ? error.code : undefined;
}

/** Token usage of all calls added up; the image/text split only when every call reports it. */
function sumUsage(usages: Array<TokenUsage | undefined>): TokenUsage | undefined {
  const reported = usages.filter((usage): usage is TokenUsage => usage !== undefined);
  if (reported.length === 0) return undefined;
  const total = (pick: (usage: TokenUsage) => number | undefined) =>
    reported.every((usage) => pick(usage) !== undefined)
      ? reported.reduce((sum, usage) => sum + (pick(usage) ?? 0), 0)
      : undefined;
  return {
    inputTokens: total((usage) => usage.inputTokens) ?? 0,
    outputTokens: total((usage) => usage.outputTokens) ?? 0,
    totalTokens: total((usage) => usage.totalTokens) ?? 0,
    inputImageTokens: total((usage) => usage.inputImageTokens),
    inputTextTokens: total((usage) => usage.inputTextTokens),
  };
}
