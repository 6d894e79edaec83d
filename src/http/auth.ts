/**
 * Authentication hooks for routes: `requireKey` for the API, `requireAdmin` for /api/admin.
 * They run on `onRequest`, before the body is read: an unauthenticated client gets its 401
 * without the hub parsing (up to MAX_BODY_BYTES of) its body. The principal lands on
 * `request.principal` for the handler.
 *
 * With a brute-force guard (auth/brute-force.ts), a client address that has failed too many key
 * checks is refused with 429 before its key is even looked up; every 401 of the authenticator
 * (missing, malformed, unknown, revoked key, wrong secret) counts as a failure.
 */
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from "fastify";
import { type BruteForceGuard, tooManyFailedAuth } from "../auth/brute-force.ts";
import type { LastUsedTracker } from "../auth/last-used.ts";
import type { Authenticator, Principal } from "../auth/principal.ts";
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
  bruteForce?: BruteForceGuard,
): AuthHooks {
  const authenticate = async (request: FastifyRequest) => {
    const lockout = bruteForce?.lockoutOf(request.ip);
    if (lockout) throw tooManyFailedAuth(lockout);
    let principal: Principal;
    try {
      principal = await authenticator.authenticate(request.headers.authorization);
    } catch (error) {
      if (bruteForce && isHubError(error) && error.status === 401) {
        countFailure(bruteForce, request);
      }
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

/** Counts the failure and says so, once, when it locks the address out; never the key tried. */
function countFailure(bruteForce: BruteForceGuard, request: FastifyRequest): void {
  const { lockedOut, client } = bruteForce.recordFailure(request.ip);
  if (lockedOut) {
    request.log.warn(
      { clientAddress: client },
      "client address locked out after too many failed API key checks",
    );
  }
}

/** The principal a `requireKey` route runs for; a route without the hook is a bug. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new Error("route is missing its authentication hook");
  return request.principal;
}
