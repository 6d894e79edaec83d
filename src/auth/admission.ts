/**
 * Whether a key may run a planned job: the models it is allowed, then its rate limits (after
 * planning, so a request the hub refuses as invalid uses up nothing).
 */
import { HubError, invalidRequest } from "../errors.ts";
import type { ImageJob } from "../images/plan.ts";
import type { Principal } from "./principal.ts";
import { type RateLimiter, rateLimited } from "./rate-limit.ts";

/** The in-process limiter or the shared one (rate-limit-redis.ts). */
export type Limiter = {
  check(
    ...args: Parameters<RateLimiter["check"]>
  ): ReturnType<RateLimiter["check"]> | Promise<ReturnType<RateLimiter["check"]>>;
};

export function createAdmission(options: { limiter: Limiter }) {
  return async function admit(principal: Principal, job: ImageJob): Promise<void> {
    // The model the client named: a key for dall-e-3 may use it while its successor serves.
    const named = job.substitutedFor ?? job.model;
    if (principal.models !== null && !principal.models.includes(named.id)) {
      throw new HubError(
        `This API key may not use the model '${named.id}'. It may use: ${principal.models.join(", ") || "no models"}.`,
        { status: 403, type: "permission_error", code: "model_not_allowed", param: "model" },
      );
    }
    // More images than the key may make in a minute can never pass: a 429 would only have the
    // SDKs retry for minutes. Say what the limit is instead.
    if (principal.ipm !== null && job.n > principal.ipm) {
      throw invalidRequest(
        `Invalid 'n': this API key may make at most ${principal.ipm} image(s) a minute (its ipm), so ${job.n} in one request can never pass. Ask for fewer, or ask the hub's admin for a higher ipm.`,
        "n",
        "n_above_key_limit",
      );
    }
    if (principal.rpm === null && principal.ipm === null) return;
    const verdict = await options.limiter.check(
      principal.keyId,
      { rpm: principal.rpm, ipm: principal.ipm },
      job.n,
    );
    if (!verdict.allowed) throw rateLimited(verdict);
  };
}
