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

/** Compares two strings in time that does not depend on where they differ. */
export function constantTimeEqual(a: string, b: string): boolean {
  // Hash both first so the lengths match and the comparison leaks neither length nor content.
  const left = createHash("sha256").update(a).digest();
  const right = createHash("sha256").update(b).digest();
  return timingSafeEqual(left, right);
}
