/**
 * Who is calling: resolved from the bearer token on every request. No cache: a revoked key is
 * refused on its very next request.
 */

import { timingSafeEqual } from "node:crypto";
import { unauthorized } from "../errors.ts";
import type { Database, KeyRole } from "../storage/db/types.ts";
import { digestOf, hashSecret, parseApiKey, sameHash } from "./keys.ts";

export interface Principal {
  keyId: string;
  name: string;
  role: KeyRole;
  /** Catalog model ids the key may use; null for all. */
  models: string[] | null;
  rpm: number | null;
  ipm: number | null;
  /** Credit at the time of the request; null for unlimited. Reservations are the real check. */
  balanceMicros: number | null;
}

/** The principal of the operator's ADMIN_KEY setting, which has no database row. */
export const ENVIRONMENT_ADMIN: Principal = {
  keyId: "admin-env",
  name: "ADMIN_KEY",
  role: "admin",
  models: null,
  rpm: null,
  ipm: null,
  balanceMicros: null,
};

export interface Authenticator {
  authenticate(authorization: string | undefined): Promise<Principal>;
}

export function createAuthenticator(options: {
  db: Database;
  adminKey: string | undefined;
}): Authenticator {
  // Hashed once: each request then costs two hashes (the token against it, the secret).
  const adminKeyDigest = options.adminKey === undefined ? undefined : digestOf(options.adminKey);
  return {
    async authenticate(authorization) {
      const token = bearerToken(authorization);
      if (!token) throw unauthorized();
      if (adminKeyDigest && timingSafeEqual(digestOf(token), adminKeyDigest)) {
        return ENVIRONMENT_ADMIN;
      }
      const parsed = parseApiKey(token);
      if (!parsed) throw unauthorized("Incorrect API key provided.");
      const record = await options.db.findKey(parsed.id);
      if (
        !record ||
        record.revokedAt !== null ||
        !sameHash(hashSecret(parsed.secret), record.secretHash)
      ) {
        throw unauthorized("Incorrect API key provided.");
      }
      return {
        keyId: record.id,
        name: record.name,
        role: record.role,
        models: record.models,
        rpm: record.rpm,
        ipm: record.ipm,
        balanceMicros: record.balanceMicros,
      };
    },
  };
}

/** The token of a `Bearer` Authorization header; undefined when the request carries no key. */
export function bearerToken(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  return match?.[1];
}
