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
 *
 * Resilience (targets.ts): each upstream call has the model's time budget (its route's,
 * UPSTREAM_TIMEOUT_MS, or the catalog's) and is tried again only where images/retry.ts says it is
 * safe. When no call of the model made an image and the failure allows it, the route's fallbacks
 * are tried in order, each planned from the same request; the one that serves is what the record
 * names and what is charged, and the reservation covered the dearest of them from the start. A
 * retired model's successor, tried only when the provider answers that the model is gone, is
 * covered then: the reservation is topped up to it, or, when the credit cannot cover that, it is
 * not tried and the request fails with 402.
 */
import { randomUUID } from "node:crypto";
import type { Principal } from "../auth/principal.ts";
import type { Accounting } from "../billing/accounting.ts";
import { type HubError, internalError, isHubError, upstreamFailed } from "../errors.ts";
import type { ImageMimeType, ImageProvider, InputImage, TokenUsage } from "../providers/types.ts";
import type { HostedImageRecord, UsageRecord } from "../storage/db/types.ts";
import type { Catalog, ModelSpec, ProviderName } from "./catalog.ts";
import type { Serving } from "./lifecycle.ts";
import { type ImageJob, type ImageJobRequest, type ImageSource, planImageJob } from "./plan.ts";
import { createDelivery, type GeneratedImageData, startsLikeAnImage } from "./results.ts";

export type { GeneratedImageData };

import { defaultRoute, type ModelRoute } from "./routes.ts";
import { createTargets, errorCodeOf, mostTellingError, rejections } from "./targets.ts";

export interface ImageServiceDeps {
  catalog: Catalog;
  providers: Partial<Record<ProviderName, ImageProvider>>;
  defaultModel: string;
  fanOutConcurrency: number;
  /** Fetches (through the SSRF guard), decodes and checks input images. */
  loadInputs(sources: ImageSource[], param: string, signal: AbortSignal): Promise<InputImage[]>;
  /** Fetches an image an upstream answered with as a URL, so clients never depend on it. */
  fetchUpstreamImage(url: string, signal: AbortSignal): Promise<Buffer>;
  /** Stores an image: its signed, expiring URL, its name in the store and its expiry. */
  hostImage(
    bytes: Buffer,
    mimeType: ImageMimeType,
  ): Promise<{ url: string; name: string; expiresAt: number }>;
  /** Told how long each successful request took, by the model the client named. */
  latency?: { record(model: string, latencyMs: number): void };
  /** Keeps what the gallery shows of hosted images (their prompt, model, cost); none if unset. */
  gallery?: { add(images: HostedImageRecord[]): Promise<void> };
  /** Reserves credit before the provider is called; prices, settles and records at the end. */
  accounting: Accounting;
  /** Whether the key may run this job (its models, its rate limits); throws when not. */
  admit?(principal: Principal, job: ImageJob): void | Promise<void>;
  /** Re-reads the catalog: a name it does not know may have been added on another instance. */
  refreshCatalog?(): Promise<void>;
  /**
   * Which model serves a request for `model`: itself, or a retired model's successor
   * (images/lifecycle.ts). With `ifGone`, as if `model` itself had just been found gone. Every
   * model serves itself when this is not given.
   */
  servingModel?(model: ModelSpec, options?: { ifGone: boolean }): Serving;
  /** A call for `model` was answered `model_not_found`: its provider no longer offers it. */
  modelGone?(model: ModelSpec): void;
  /** The admin's routes (fallbacks, time budgets, retry policy); defaults for all without. */
  routes?: { routeFor(model: string): ModelRoute };
  /** A provider calling through one named credential, for fallbacks that name one. */
  pinnedProvider?(credentialId: string): ImageProvider | undefined;
  /** UPSTREAM_TIMEOUT_MS: every model's time budget; each model's catalog one when unset. */
  upstreamTimeoutMs?: number;
  /** Tries of one upstream call where a retry is safe (UPSTREAM_MAX_ATTEMPTS); 3 by default. */
  maxAttempts?: number;
  /** In [0, 1): the jitter of retry waits (tests pin it). */
  random?: () => number;
  /** Waits between tries; rejects with the signal's reason when it aborts. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  clock?: () => number;
  log?: {
    info?(object: object, message: string): void;
    warn(object: object, message: string): void;
    error(object: object, message: string): void;
  };
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
  /** What the key was charged, micro-USD: the usage record's cost, known once it is written. */
  costMicros: number;
}

/** What the request says of itself beyond its body. */
export interface RequestContext {
  /** The calling application, as it named itself (usage records' `app`). */
  app?: string | null;
  /**
   * Takes the request's summary for the log (the HTTP layer writes it in the request's one log
   * line); without it the pipeline logs the summary as a line of its own.
   */
  summary?: (fields: Record<string, unknown>) => void;
}

export interface ImageService {
  generate(
    principal: Principal,
    request: ImageJobRequest,
    signal: AbortSignal,
    context?: RequestContext,
  ): Promise<GenerationResult>;
  isProviderConfigured(provider: ProviderName): boolean;
}

export function createImageService(deps: ImageServiceDeps): ImageService {
  const clock = deps.clock ?? Date.now;
  const deliver = createDelivery(deps);
  const serving = deps.servingModel;
  /** Which model serves a request for `model` (planImageJob's option); undefined: itself. */
  const servingOf = serving && ((model: ModelSpec) => serving(model));
  const isProviderConfigured = (provider: ProviderName) => deps.providers[provider] !== undefined;
  const { callTargets, successorIfGone, targetOf, fallbacksOf } = createTargets(
    deps,
    isProviderConfigured,
  );

  async function generate(
    principal: Principal,
    request: ImageJobRequest,
    signal: AbortSignal,
    context: RequestContext = {},
  ): Promise<GenerationResult> {
    const startedAt = clock();
    const recordId = randomUUID();
    let job: ImageJob | undefined;
    let planned: ImageJob | undefined;
    let delivered = 0;
    let upstreamLatencyMs: number | null = null;
    let failure: HubError | undefined;
    let partialCode: string | undefined;
    let reservedMicros: number | null = null;
    let tokenUsage: TokenUsage | undefined;
    let result: GenerationResult | undefined;
    // A request the key's own limits refuse leaves no record: a client flooding the hub must
    // not cost a database write per refusal. Everything admitted is recorded, failures too.
    let admitted = false;
    try {
      if (deps.refreshCatalog && !deps.catalog.find(request.model ?? deps.defaultModel)) {
        await deps.refreshCatalog();
      }
      planned = planImageJob(deps.catalog, request, {
        defaultModel: deps.defaultModel,
        isProviderConfigured,
        servingModel: servingOf,
      });
      job = planned;
      await deps.admit?.(principal, planned);
      admitted = true;
      signal.throwIfAborted();
      const route = deps.routes?.routeFor(planned.model.id) ?? defaultRoute(planned.model.id);
      let fallbacks = [
        ...successorIfGone(request, planned, route),
        ...fallbacksOf(request, planned, route, principal),
      ];
      reservedMicros = await deps.accounting.reserve(
        principal,
        planned,
        recordId,
        startedAt,
        fallbacks.filter((target) => !target.whenGone).map((target) => target.job),
      );
      const reserved = reservedMicros;
      // The credit covered only the model asked for: no fallback may cost more than that. A
      // successor stays: it is covered when it is needed (coverStandby).
      if (reserved !== null) {
        fallbacks = fallbacks.filter(
          ({ job, whenGone }) => whenGone || deps.accounting.costCeiling(job) <= reserved,
        );
      }
      /**
       * Whether the reservation covers a successor about to be called, topping it up to the
       * successor's cost first if need be (settling then goes by the new amount).
       */
      const coverStandby = async (standby: ImageJob): Promise<boolean> => {
        if (reservedMicros === null) return true;
        const ceiling = deps.accounting.costCeiling(standby);
        if (ceiling <= reservedMicros) return true;
        if (!(await deps.accounting.topUp(principal, recordId, ceiling))) return false;
        reservedMicros = ceiling;
        return true;
      };
      const targets = [targetOf(planned, null, route), ...fallbacks];
      const [images, mask] = await Promise.all([
        deps.loadInputs(planned.images, "image", signal),
        planned.mask === undefined
          ? Promise.resolve(undefined)
          : deps.loadInputs([planned.mask], "mask", signal).then((loaded) => loaded[0]),
      ]);

      const upstreamStartedAt = clock();
      const caller = { recordId, keyId: principal.keyId };
      const served = await callTargets(targets, route, images, mask, signal, caller, coverStandby);
      const { calls, notes: fallbackNotes } = served;
      job = served.job;
      upstreamLatencyMs = clock() - upstreamStartedAt;
      // A client that has gone gets nothing stored or counted as delivered for it.
      signal.throwIfAborted();

      const answered = calls.flatMap((call) =>
        call.status === "fulfilled" ? call.value.images : [],
      );
      // Only what starts like an image counts as made: a proxy's error page in a 200, say, is not.
      const made = answered.filter(startsLikeAnImage);
      const errors = rejections(calls);
      if (made.length < answered.length) {
        errors.push(
          upstreamFailed("The upstream answered with data that is not an image.", {
            code: "upstream_invalid_response",
          }),
        );
      }
      if (made.length === 0) throw mostTellingError(errors, signal);
      if (made.length < job.n) {
        partialCode = errors.length > 0 ? errorCodeOf(mostTellingError(errors, signal)) : undefined;
        partialCode ??= "fewer_images";
      }

      const data = await deliver(job, made, signal);
      delivered = data.length;
      const warnings = [
        ...fallbackNotes,
        ...job.warnings,
        ...calls.flatMap((call) => (call.status === "fulfilled" ? call.value.warnings : [])),
      ];
      for (const error of errors) {
        deps.log?.warn({ err: error, model: job.model.id }, "an upstream call of a fan-out failed");
      }
      tokenUsage = sumUsage(
        calls.flatMap((call) => (call.status === "fulfilled" ? [call.value.usage] : [])),
      );
      result = {
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
        costMicros: 0,
      };
      return result;
    } catch (error) {
      failure = isHubError(error) ? error : signal.aborted ? undefined : internalError(error);
      if (failure === undefined) throw error;
      throw failure;
    } finally {
      const record: Omit<UsageRecord, "costMicros"> = {
        id: recordId,
        keyId: principal.keyId,
        model: job?.model.id ?? request.model ?? deps.defaultModel,
        // The catalog id the client named (a retired model's, when its successor served).
        requestedModel: job ? (job.substitutedFor ?? job.model).id : null,
        app: context.app ?? null,
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
      if (record.status === "succeeded") {
        deps.latency?.record(record.requestedModel ?? record.model, record.latencyMs);
      }
      if (!refusedByLimits) {
        await deps.accounting
          .record({ record, job, usage: tokenUsage, reservedMicros })
          .then(async (written) => {
            // The returned result is this object: its cost is filled in before the caller sees it.
            if (result) result.costMicros = written.costMicros;
            if (result && job)
              await keepInGallery(result, job, principal.keyId, written.costMicros);
          })
          .catch((error: unknown) => {
            // The reservation stays open and is released by the next start's recovery.
            deps.log?.error({ err: error, recordId }, "could not write the usage record");
          });
      }
      // What an operator follows a request by, matching the reply's X-Image-Hub-Record-Id and
      // the ledger row (none for a request its key's own limits refused).
      const summary = {
        recordId: refusedByLimits ? null : recordId,
        keyId: principal.keyId,
        app: record.app,
        requestedModel: record.requestedModel ?? record.model,
        model: record.model,
        n: record.imagesRequested,
        delivered,
        status: refusedByLimits ? "refused" : record.status,
        errorCode: record.errorCode,
        upstreamMs: upstreamLatencyMs,
        totalMs: record.latencyMs,
      };
      if (context.summary) context.summary(summary);
      else deps.log?.info?.(summary, "image request");
    }
  }

  /** What the gallery shows of the images this request hosted; a failure only logs. */
  async function keepInGallery(
    result: GenerationResult,
    job: ImageJob,
    keyId: string,
    costMicros: number,
  ): Promise<void> {
    const hosted = result.data.filter((item) => item.hosted !== undefined);
    if (!deps.gallery || hosted.length === 0) return;
    const perImage = Math.round(costMicros / Math.max(1, result.data.length));
    await deps.gallery
      .add(
        hosted.map((item) => ({
          name: item.hosted?.name ?? "",
          keyId,
          recordId: result.recordId,
          model: job.model.id,
          size: job.deliver?.size
            ? `${job.deliver.size.width}x${job.deliver.size.height}`
            : (job.size ?? "auto"),
          prompt: job.prompt,
          costMicros: perImage,
          mimeType: item.mimeType,
          createdAt: result.created * 1000,
          expiresAt: item.hosted?.expiresAt ?? 0,
        })),
      )
      .catch((error: unknown) => {
        deps.log?.error(
          { err: error, recordId: result.recordId },
          "could not keep images for the gallery",
        );
      });
  }

  return { generate, isProviderConfigured };
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
