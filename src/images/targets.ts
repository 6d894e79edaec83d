/**
 * The ways a request can be served, tried in order: the model asked for, its route's fallbacks
 * (each planned from the same request, usable by the key), and a retired model's successor,
 * which takes over only when the provider answers that the model is gone and the key's credit
 * covers it (the reservation is topped up then, not held up front). Each target's calls retry
 * where images/retry.ts says it is safe, within the target's time budget.
 */
import { setTimeout as sleepFor } from "node:timers/promises";
import type { Principal } from "../auth/principal.ts";
import { microsToUsd } from "../billing/money.ts";
import { type HubError, insufficientQuota, internalError, isHubError } from "../errors.ts";
import type { ImageProvider, InputImage } from "../providers/types.ts";
import type { ProviderName } from "./catalog.ts";
import { settleWithConcurrency } from "./fan-out.ts";
import type { ImageServiceDeps } from "./generate.ts";
import { type ImageJob, type ImageJobRequest, planImageJob } from "./plan.ts";
import { runForRequest } from "./request-scope.ts";
import { DEFAULT_BACKOFF, mayFallBack, type RetryPolicy, retryDelayMs } from "./retry.ts";
import { defaultRoute, type ModelRoute } from "./routes.ts";

/** One way to serve a request: a planned job on a provider (a model, or a fallback of it). */
export interface Target {
  job: ImageJob;
  provider: ImageProvider;
  /** The credential a fallback pinned, for logs. */
  credentialId: string | null;
  timeoutMs: number;
  /** The retired model's successor: tried only when the model before it was found gone. */
  whenGone?: boolean;
}

export function createTargets(
  deps: ImageServiceDeps,
  isProviderConfigured: (provider: ProviderName) => boolean,
) {
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

  return { callTargets, successorIfGone, targetOf, fallbacksOf };
}

export function rejections(calls: PromiseSettledResult<unknown>[]): unknown[] {
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
export function mostTellingError(errors: unknown[], signal: AbortSignal): unknown {
  if (signal.aborted) return signal.reason;
  const policy = errors.find(
    (error) => isHubError(error) && error.code === "content_policy_violation",
  );
  return policy ?? errors.find(isHubError) ?? errors[0] ?? internalError();
}

export function errorCodeOf(error: unknown): string | undefined {
  return isHubError(error) ? error.code : undefined;
}
