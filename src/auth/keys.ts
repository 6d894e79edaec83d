/**
 * API keys: `sk-ih-<id>-<secret>`. The id (12 hex characters) is public and finds the record;
 * the secret (32 bytes, base64url) is shown once and stored only as its SHA-256. A fast hash is
 * right here: the secret is 256 random bits, so there is nothing to guess that a slow hash would
 * protect, and every request pays for the check.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

const KEY_PATTERN = /^sk-ih-([0-9a-f]{12})-([A-Za-z0-9_-]{43})$/;

export interface NewKey {
  id: string;
  secretHash: string;
  /** The whole key, to hand to the client once. */
  key: string;
}

/** A new key; with `id`, a new secret for an existing key (rotation keeps the id). */
export function generateApiKey(id = randomBytes(6).toString("hex")): NewKey {
  const secret = randomBytes(32).toString("base64url");
  return { id, secretHash: hashSecret(secret), key: `sk-ih-${id}-${secret}` };
}

export function parseApiKey(key: string): { id: string; secret: string } | undefined {
  const match = KEY_PATTERN.exec(key);
  if (!match) return undefined;
  return { id: match[1] as string, secret: match[2] as string };
}

export function hashSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

/** SHA-256 of a string, as bytes: compared with timingSafeEqual, lengths always match. */
export function digestOf(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/**
 * Whether two hex SHA-256 hashes are the same, in time that does not depend on where they
 * differ (both are 64 characters; anything else is simply not the same).
 */
export function sameHash(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(Buffer.from(a, "latin1"), Buffer.from(b, "latin1"));
}
