/**
 * Authentication hooks for routes: `requireKey` for the API, `requireAdmin` for /api/admin.
 * They run on `onRequest`, before the body is read: an unauthenticated client gets its 401
 * without the hub parsing (up to MAX_BODY_BYTES of) its body. The principal lands on
 * `request.principal` for the handler.
 *
 * With a wrong-key throttle (auth/brute-force.ts), every key is still checked and a valid one is
 * always served; a wrong key (malformed, unknown, revoked, wrong secret) counts, and from an
 * address that sent too many of them lately gets 429 with Retry-After instead of 401. A request
 * with no key at all is a plain 401 and does not count.
 */
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from "fastify";
import { tooManyWrongKeys, type WrongKeyThrottle } from "../auth/brute-force.ts";
import type { LastUsedTracker } from "../auth/last-used.ts";
import { type Authenticator, bearerToken, type Principal } from "../auth/principal.ts";
import { forbidden, isHubError } from "../errors.ts";

declare module "fastify" {
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}

export interface AuthHooks {
  requireKey: onRequestAsyncHookHandler;
  requireAdmin: onRequestAsyncHookHandler;
}

export function createAuthHooks(
  authenticator: Authenticator,
  lastUsed?: Pick<LastUsedTracker, "touch">,
  wrongKeys?: WrongKeys,
): AuthHooks {
  const authenticate = async (request: FastifyRequest) => {
    let principal: Principal;
    try {
      principal = await authenticator.authenticate(request.headers.authorization);
    } catch (error) {
      const wrongKey =
        isHubError(error) &&
        error.status === 401 &&
        bearerToken(request.headers.authorization) !== undefined;
      if (wrongKeys && wrongKey) await countWrongKey(wrongKeys, request);
      throw error;
    }
    lastUsed?.touch(principal.keyId);
    return principal;
  };
  const requireKey = async (request: FastifyRequest, _reply: FastifyReply) => {
    request.principal = await authenticate(request);
  };
  const requireAdmin = async (request: FastifyRequest, _reply: FastifyReply) => {
    const principal = await authenticate(request);
    if (principal.role !== "admin") throw forbidden("This endpoint needs an admin key.");
    request.principal = principal;
  };
  return { requireKey, requireAdmin };
}

/**
 * Counts a wrong key; throws the 429 when its address is throttled, and says so in the log once
 * per throttle (never the key tried).
 */
async function countWrongKey(wrongKeys: WrongKeys, request: FastifyRequest) {
  const { throttle, started, client } = await wrongKeys.recordWrongKey(request.ip);
  if (!throttle) return;
  if (started) {
    request.log.warn(
      { clientAddress: client, retryAfterSeconds: throttle.retryAfterSeconds },
      "client address sends too many wrong API keys; its wrong keys get 429 for a while",
    );
  }
  throw tooManyWrongKeys(throttle);
}

/** The in-process throttle or the shared one (brute-force-redis.ts). */
export type WrongKeys = {
  recordWrongKey(
    address: string | undefined,
  ):
    | ReturnType<WrongKeyThrottle["recordWrongKey"]>
    | Promise<ReturnType<WrongKeyThrottle["recordWrongKey"]>>;
};

/** The principal a `requireKey` route runs for; a route without the hook is a bug. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new Error("route is missing its authentication hook");
  return request.principal;
}
