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
 * Resilience: each upstream call has the model's time budget (its route's, UPSTREAM_TIMEOUT_MS,
 * or the catalog's) and is tried again only where images/retry.ts says it is safe. When no call
 * of the model made an image and the failure allows it, the route's fallbacks are tried in
 * order, each planned from the same request; the one that serves is what the record names and
 * what is charged, and the reservation covered the dearest of them from the start. A retired
 * model's successor, tried only when the provider answers that the model is gone, is covered
 * then: the reservation is topped up to it, or, when the credit cannot cover that, it is not
 * tried and the request fails as the model did.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleepFor } from "node:timers/promises";
import type { Principal } from "../auth/principal.ts";
import type { Accounting } from "../billing/accounting.ts";
import { microsToUsd } from "../billing/money.ts";
import {
  type HubError,
  insufficientQuota,
  internalError,
  isHubError,
  upstreamFailed,
} from "../errors.ts";
import type { ImageMimeType, ImageProvider, InputImage, TokenUsage } from "../providers/types.ts";
import type { HostedImageRecord, UsageRecord } from "../storage/db/types.ts";
import type { Catalog, ModelSpec, ProviderName } from "./catalog.ts";
import { settleWithConcurrency } from "./fan-out.ts";
import type { Serving } from "./lifecycle.ts";
import { type ImageJob, type ImageJobRequest, type ImageSource, planImageJob } from "./plan.ts";
import { runForRequest } from "./request-scope.ts";
import { createDelivery, type GeneratedImageData, startsLikeAnImage } from "./results.ts";

export type { GeneratedImageData };

import { DEFAULT_BACKOFF, mayFallBack, type RetryPolicy, retryDelayMs } from "./retry.ts";
import { defaultRoute, type ModelRoute } from "./routes.ts";

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

/** One way to serve a request: a planned job on a provider (a model, or a fallback of it). */
interface Target {
  job: ImageJob;
  provider: ImageProvider;
  /** The credential a fallback pinned, for logs. */
  credentialId: string | null;
  timeoutMs: number;
  /** The retired model's successor: tried only when the model before it was found gone. */
  whenGone?: boolean;
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

  /**
   * Calls the targets in order (the model, then its route's fallbacks) until one makes an image
   * or a failure says the next may not take over (images/retry.ts). A retired model's successor
   * (a `whenGone` target) takes over only when the model was answered `model_not_found` and
   * `coverStandby` could cover it, and is skipped otherwise. Returns the calls of the last target
   * tried, the job that served (the one asked for when none did), and what the client should be
   * told about fallbacks taken.
   */
  async function callTargets(
    targets: readonly Target[],
    route: ModelRoute,
    images: InputImage[],
    mask: InputImage | undefined,
    signal: AbortSignal,
    caller: { recordId: string; keyId: string },
    coverStandby: (standby: ImageJob) => Promise<boolean>,
  ) {
    const notes: string[] = [];
    let target = targets[0] as Target;
    for (;;) {
      const calls = await callProvider(target, images, mask, signal, route.retryBillable, caller);
      signal.throwIfAborted();
      if (calls.some((call) => call.status === "fulfilled" && call.value.images.length > 0)) {
        return { calls, job: target.job, notes };
      }
      const failure = mostTellingError(rejections(calls), signal);
      const code = errorCodeOf(failure) ?? "error";
      const gone = code === "upstream_model_not_found";
      if (gone) deps.modelGone?.(target.job.model);
      // Asked first: finding the next target may top the reservation up for a successor.
      if (!mayFallBack(failure, route.retryBillable)) {
        return { calls, job: (targets[0] as Target).job, notes };
      }
      const { next, uncovered } = await nextTarget(targets, target, gone, coverStandby);
      // The credit, not the model, stands in the way: say so (402), as the next request will.
      if (!next && uncovered) throw successorNotCovered(target.job, uncovered);
      if (!next) return { calls, job: (targets[0] as Target).job, notes };
      deps.log?.warn(
        {
          model: target.job.model.id,
          fallback: next.job.model.id,
          credentialId: next.credentialId,
          code,
        },
        next.whenGone
          ? "the provider no longer offers the model; its successor serves"
          : "no image from the model; trying its next fallback",
      );
      if (!next.whenGone) {
        notes.push(
          `${target.job.model.id} failed (${code}); the route's fallback ${next.job.model.id} was tried instead.`,
        );
      }
      target = next;
    }
  }

  /**
   * The target to try after `current`: the next fallback, or, when `current` was found gone, a
   * successor, if `coverStandby` covers it. One it cannot cover is passed over (`uncovered`):
   * a later fallback may still serve; if none does, the request fails for want of credit,
   * charged nothing.
   */
  async function nextTarget(
    targets: readonly Target[],
    current: Target,
    gone: boolean,
    coverStandby: (standby: ImageJob) => Promise<boolean>,
  ): Promise<{ next: Target | undefined; uncovered: ImageJob | undefined }> {
    let uncovered: ImageJob | undefined;
    for (const candidate of targets.slice(targets.indexOf(current) + 1)) {
      if (!candidate.whenGone) return { next: candidate, uncovered };
      if (!gone) continue;
      if (await coverStandby(candidate.job)) return { next: candidate, uncovered };
      uncovered = candidate.job;
    }
    return { next: undefined, uncovered };
  }

  function successorNotCovered(gone: ImageJob, successor: ImageJob): HubError {
    const ceiling = deps.accounting.costCeiling(successor);
    return insufficientQuota(
      `${gone.model.id} is no longer offered by its provider, and its successor ` +
        `${successor.model.id} may cost up to $${microsToUsd(ceiling)}, more than the key's ` +
        "credit covers. Ask the hub's admin for more credit, or ask for fewer or smaller images.",
    );
  }

  /**
   * The successor that takes over if the provider answers that the model is gone, planned now
   * so that it is known up front (its cost is reserved only once it is needed: coverStandby):
   * the hub believed the model alive, or it would have planned the successor from the start.
   */
  function successorIfGone(request: ImageJobRequest, primary: ImageJob, route: ModelRoute) {
    const model = primary.model;
    if (!deps.servingModel || primary.substitutedFor || model.successor === null) return [];
    try {
      const serving = deps.servingModel(model, { ifGone: true });
      const job = planImageJob(deps.catalog, request, {
        defaultModel: deps.defaultModel,
        isProviderConfigured,
        servingModel: (named) => (named === model ? serving : { model: named, retired: [] }),
      });
      const ownRoute = deps.routes?.routeFor(job.model.id) ?? route;
      return [{ ...targetOf(job, null, ownRoute), whenGone: true }];
    } catch {
      // No successor that can take this request: a gone model then fails as it is.
      return [];
    }
  }

  /** The model's provider and time budget: the route's, the setting's, or the catalog's. */
  function targetOf(job: ImageJob, credentialId: string | null, route: ModelRoute): Target {
    const provider = credentialId
      ? deps.pinnedProvider?.(credentialId)
      : deps.providers[job.model.provider];
    if (!provider) throw new Error(`no provider for ${job.model.id}`);
    const timeoutMs = route.timeoutMs ?? deps.upstreamTimeoutMs ?? job.model.timeoutMs;
    return { job, provider, credentialId, timeoutMs };
  }

  /**
   * The route's fallbacks this request can use: each planned from the same request (a fallback
   * that cannot take it, such as a size it lacks, is skipped), usable by the key, with a provider
   * configured. Skips are logged, not errors: the model itself may well succeed.
   */
  function fallbacksOf(
    request: ImageJobRequest,
    primary: ImageJob,
    route: ModelRoute,
    principal: Principal,
  ): Target[] {
    const targets: Target[] = [];
    for (const fallback of route.fallbacks) {
      const skip = (reason: string) =>
        deps.log?.warn({ model: primary.model.id, fallback, reason }, "route fallback skipped");
      if (principal.models !== null && !principal.models.includes(fallback.model)) {
        skip("the key may not use this model");
        continue;
      }
      try {
        const job = planImageJob(
          deps.catalog,
          { ...request, model: fallback.model },
          { defaultModel: deps.defaultModel, isProviderConfigured },
        );
        // Its own time budget: a fallback model may be slower or faster than the one it replaces.
        const ownRoute = deps.routes?.routeFor(job.model.id) ?? defaultRoute(job.model.id);
        targets.push(targetOf(job, fallback.credentialId, ownRoute));
      } catch (error) {
        skip(isHubError(error) ? error.message : "no usable provider");
      }
    }
    return targets;
  }

  async function callProvider(
    target: Target,
    images: InputImage[],
    mask: InputImage | undefined,
    signal: AbortSignal,
    retryBillable: boolean,
    caller: { recordId: string; keyId: string },
  ) {
    const { job, provider } = target;
    // For the task journal: which reservation a task-based provider's task belongs to.
    const inFlight = {
      ...caller,
      model: job.model.id,
      size: job.size ?? null,
      quality: job.quality ?? null,
    };
    const policy: RetryPolicy = {
      maxAttempts: deps.maxAttempts ?? 3,
      retryBillable,
      random: deps.random ?? Math.random,
      ...DEFAULT_BACKOFF,
    };
    // Monotonic, unlike `clock` (which tests move): the budget is real time.
    const budgetEndsAt = performance.now() + target.timeoutMs;
    return settleWithConcurrency(job.calls, deps.fanOutConcurrency, async (count) => {
      for (let attempt = 1; ; attempt++) {
        signal.throwIfAborted();
        try {
          const call = callOf(job, count, images, mask, signal, budgetEndsAt);
          return await runForRequest(inFlight, () => provider.generate(call));
        } catch (error) {
          if (signal.aborted) throw error;
          const delay = retryDelayMs(error, attempt, budgetEndsAt - performance.now(), policy);
          if (delay === undefined) throw error;
          deps.log?.info?.(
            { model: job.model.id, attempt, delayMs: Math.round(delay), code: errorCodeOf(error) },
            "retrying an upstream call",
          );
          await (deps.sleep ?? sleepUnlessAborted)(delay, signal);
        }
      }
    });
  }

  function callOf(
    job: ImageJob,
    count: number,
    images: InputImage[],
    mask: InputImage | undefined,
    signal: AbortSignal,
    budgetEndsAt: number,
  ) {
    return {
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
      extra: job.extra,
      template: job.model.requestTemplate,
      signal,
      // What is left of the budget: a retry never gets more time than the first try had.
      timeoutMs: Math.max(1, Math.round(budgetEndsAt - performance.now())),
    };
  }

  return { generate, isProviderConfigured };
}

function rejections(calls: PromiseSettledResult<unknown>[]): unknown[] {
  return calls.flatMap((call) => (call.status === "rejected" ? [call.reason] : []));
}

async function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  try {
    await sleepFor(ms, undefined, { signal });
  } catch {
    signal.throwIfAborted();
  }
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
