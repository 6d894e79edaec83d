/**
 * Authentication hooks for routes: `requireKey` for the API, `requireAdmin` for /api/admin.
 * They run on `onRequest`, before the body is read: an unauthenticated client gets its 401
 * without the hub parsing (up to MAX_BODY_BYTES of) its body. The principal lands on
 * `request.principal` for the handler.
 */
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from "fastify";
import type { LastUsedTracker } from "../auth/last-used.ts";
import type { Authenticator, Principal } from "../auth/principal.ts";
import { forbidden } from "../errors.ts";

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
): AuthHooks {
  const authenticate = async (request: FastifyRequest) => {
    const principal = await authenticator.authenticate(request.headers.authorization);
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

/** The principal a `requireKey` route runs for; a route without the hook is a bug. */
export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new Error("route is missing its authentication hook");
  return request.principal;
}
